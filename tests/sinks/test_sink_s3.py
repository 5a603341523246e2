"""S3 sink against a real moto server: objects, gzip, key format, rotation, multipart, crashes."""

from __future__ import annotations

import gzip
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from qtap_fluent.sinks.base import Batch, Entry, Result
from qtap_fluent.sinks.limits import MIB, S3_MAX_PARTS, S3_MIN_PART_SIZE
from qtap_fluent.sinks.s3 import S3Sink, part_size_for

T0 = 1_700_000_000.25  # 2023-11-14T22:13:20Z


def records(n: int, start: int = 0, pad: int = 0) -> list[dict[str, Any]]:
    return [{"i": i, "request": {"url": f"https://x.test/{i}", "pad": "p" * pad},
             "response": {"status": 200}} for i in range(start, start + n)]


def batch(seq: int, tag: str, recs: list[dict[str, Any]], t: float = T0) -> Batch:
    return Batch(seq=seq, entries=tuple(Entry(tag=tag, time=t, record=r) for r in recs))


def objects(client: Any, bucket: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            out[item["Key"]] = body
    return out


def lines(data: bytes) -> list[dict[str, Any]]:
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return [json.loads(x) for x in data.splitlines()]


def count_calls(client: Any, operation: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def hook(params: dict[str, Any], **kw: Any) -> None:
        body: Any = params.get("Body")
        size = None
        if isinstance(body, (bytes, bytearray)):
            size = len(body)
        elif hasattr(body, "seek"):
            pos = body.tell()
            size = body.seek(0, 2) - pos
            body.seek(pos)
        seen.append({**params, "body_size": size})

    client.meta.events.register(f"before-parameter-build.s3.{operation}", hook)
    return seen


def sink(client: Any, bucket: str, spool: Path, **kw: Any) -> S3Sink:
    kw.setdefault("json_date_key", None)
    s = S3Sink(client=client, bucket=bucket, spool_dir=spool, **kw)
    s.open()
    return s


def test_gzip_objects_hold_exactly_the_records_and_keys_follow_format(
        s3_client: Any, bucket: str, tmp_path: Path) -> None:
    s = sink(s3_client, bucket, tmp_path, compression="gzip",
             s3_key_format="/logs/$TAG[1]/$TAG/%Y/%m/%d/%H-%M-%S-$UUID.gz")
    assert s.write(batch(1, "qtap.http", records(50))) is Result.OK
    assert s.write(batch(2, "qtap.other", records(7, 100))) is Result.OK
    assert s.write(batch(3, "qtap.http", records(50, 50))) is Result.OK
    assert s.close() is Result.OK
    got = objects(s3_client, bucket)
    assert len(got) == 2
    by_prefix = {k.split("/")[1]: k for k in got}
    assert set(by_prefix) == {"http", "other"}
    key = by_prefix["http"]
    assert re.fullmatch(r"logs/http/qtap\.http/2023/11/14/22-13-20-[A-Za-z0-9]{8}\.gz", key), key
    assert got[key][:2] == b"\x1f\x8b"
    assert lines(got[key]) == records(100)
    assert lines(got[by_prefix["other"]]) == records(7, 100)
    assert not list((tmp_path / bucket).glob("*.data")), "spool must be empty after upload"


def test_date_key_is_added_like_fluent_bit(s3_client: Any, bucket: str, tmp_path: Path) -> None:
    s = sink(s3_client, bucket, tmp_path, json_date_key="date", s3_key_format="/k/$INDEX")
    s.write(batch(1, "t", records(2)))
    s.close()
    [(key, data)] = objects(s3_client, bucket).items()
    assert key == "k/0"
    assert lines(data) == [{"date": T0, **r} for r in records(2)]


def test_no_unique_token_gets_fluent_bits_random_suffix(
        s3_client: Any, bucket: str, tmp_path: Path) -> None:
    s = sink(s3_client, bucket, tmp_path, s3_key_format="/fixed/$TAG")
    s.write(batch(1, "a.b", records(1)))
    s.close()
    [key] = objects(s3_client, bucket)
    assert re.fullmatch(r"fixed/a\.b-object[A-Za-z0-9]{8}", key), key


def test_rotation_by_size_never_exceeds_total_file_size(
        s3_client: Any, bucket: str, tmp_path: Path) -> None:
    s = sink(s3_client, bucket, tmp_path, total_file_size=5_000,
             s3_key_format="/r/$INDEX")
    for seq in range(20):
        assert s.write(batch(seq, "t", records(10, seq * 10, pad=100))) is Result.OK
    s.close()
    got = objects(s3_client, bucket)
    assert len(got) > 5
    assert all(len(v) <= 5_000 for v in got.values())
    ordered = [got[k] for k in sorted(got, key=lambda k: int(k.split("/")[1]))]
    assert [r for data in ordered for r in lines(data)] == records(200, pad=100)


def test_rotation_by_age_uploads_on_flush(s3_client: Any, bucket: str, tmp_path: Path) -> None:
    clock = [1000.0]
    s = sink(s3_client, bucket, tmp_path, upload_timeout=60, clock=lambda: clock[0],
             s3_key_format="/age/$INDEX")
    s.write(batch(1, "t", records(3)))
    assert s.flush(1059.0) is Result.OK
    assert objects(s3_client, bucket) == {}
    assert s.flush(1060.0) is Result.OK
    assert list(objects(s3_client, bucket)) == ["age/0"]
    s.close()


def test_multipart_upload_for_large_objects(s3_client: Any, bucket: str, tmp_path: Path) -> None:
    creates = count_calls(s3_client, "CreateMultipartUpload")
    parts = count_calls(s3_client, "UploadPart")
    s = sink(s3_client, bucket, tmp_path, s3_key_format="/big/$INDEX")
    recs = records(1200, pad=10_000)  # ~12 MB: three parts of >= 5 MiB
    for i in range(0, 1200, 100):
        assert s.write(batch(i, "t", recs[i:i + 100])) is Result.OK
    assert s.close() is Result.OK
    assert len(creates) == 1
    assert len(parts) == 3
    assert all(p["body_size"] >= S3_MIN_PART_SIZE for p in parts[:-1])
    assert lines(objects(s3_client, bucket)["big/0"]) == recs


def test_part_size_stays_within_ten_thousand_parts() -> None:
    assert part_size_for(10 * MIB, 5 * MIB) == 5 * MIB
    huge = 60_000 * MIB
    size = part_size_for(huge, 5 * MIB)
    assert size * S3_MAX_PARTS >= huge and size > 5 * MIB


def test_restart_uploads_spooled_records_once(s3_client: Any, bucket: str, tmp_path: Path) -> None:
    first = sink(s3_client, bucket, tmp_path, s3_key_format="/c/$INDEX")
    first.write(batch(1, "t", records(10)))
    first.write(batch(2, "t", records(10, 10)))
    # Simulate a kill in the middle of the next batch: bytes past the committed length.
    [data_file] = (tmp_path / bucket).glob("*.data")
    with open(data_file, "ab") as f:
        f.write(b'{"i": 999, "half written')
    first.spool.close()  # no close(): the process "died" and the kernel closed its files
    second = sink(s3_client, bucket, tmp_path, s3_key_format="/c/$INDEX")
    assert second.stats["recovered"] == 1
    assert second.flush(time.time()) is Result.OK
    second.close()
    got = objects(s3_client, bucket)
    assert list(got) == ["c/0"]
    assert lines(got["c/0"]) == records(20)


class Killed(BaseException):
    """Stands in for SIGKILL right after a request succeeded (raised from an after-call hook)."""


def test_crash_after_put_does_not_upload_twice(
        s3_client: Any, bucket: str, tmp_path: Path) -> None:
    def die(**kw: Any) -> None:
        raise Killed

    s3_client.meta.events.register("after-call.s3.PutObject", die)
    first = sink(s3_client, bucket, tmp_path, s3_key_format="/p/$INDEX")
    first.write(batch(1, "t", records(5)))
    with pytest.raises(Killed):
        first.flush(0, force=True)
    first.spool.close()  # the kernel closes a dead process's files (and its spool lock)
    s3_client.meta.events.unregister("after-call.s3.PutObject", die)
    puts = count_calls(s3_client, "PutObject")
    second = sink(s3_client, bucket, tmp_path, s3_key_format="/p/$INDEX")
    assert second.close() is Result.OK
    assert puts == [], "the object was already there: no second PutObject"
    assert lines(objects(s3_client, bucket)["p/0"]) == records(5)
    assert not list((tmp_path / bucket).glob("*.json"))


def test_crash_during_multipart_resumes_same_upload(
        s3_client: Any, bucket: str, tmp_path: Path) -> None:
    calls = {"n": 0}

    def die_on_second_part(**kw: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise Killed

    s3_client.meta.events.register("after-call.s3.UploadPart", die_on_second_part)
    recs = records(1200, pad=10_000)
    first = sink(s3_client, bucket, tmp_path, s3_key_format="/m/$INDEX")
    first.write(batch(1, "t", recs))
    with pytest.raises(Killed):
        first.flush(0, force=True)
    first.spool.close()
    s3_client.meta.events.unregister("after-call.s3.UploadPart", die_on_second_part)
    creates = count_calls(s3_client, "CreateMultipartUpload")
    parts = count_calls(s3_client, "UploadPart")
    second = sink(s3_client, bucket, tmp_path, s3_key_format="/m/$INDEX")
    assert second.close() is Result.OK
    assert creates == [], "the persisted upload id is resumed"
    assert [p["PartNumber"] for p in parts] == [2, 3]  # part 2's ETag was never persisted
    assert lines(objects(s3_client, bucket)["m/0"]) == recs


def test_unreachable_endpoint_keeps_data_spooled(tmp_path: Path, s3_client: Any,
                                                 bucket: str) -> None:
    from qtap_fluent.sinks.s3 import make_client
    dead = make_client(endpoint="http://127.0.0.1:9", max_attempts=1)
    s = sink(dead, bucket, tmp_path, s3_key_format="/u/$INDEX")
    assert s.write(batch(1, "t", records(3))) is Result.OK
    assert s.flush(0, force=True) is Result.RETRY
    assert s.stats["upload_errors"] == 1
    # Backoff per object: 1 s, then 2 s, ... (no request storm while S3 is unreachable).
    for now, errors in ((0.5, 1), (1.0, 2), (2.9, 2), (3.0, 3)):
        assert s.flush(now) is Result.RETRY
        assert s.stats["upload_errors"] == errors, now
    s.spool.close()
    again = sink(s3_client, bucket, tmp_path, s3_key_format="/u/$INDEX")
    assert again.close() is Result.OK
    assert lines(objects(s3_client, bucket)["u/0"]) == records(3)


def test_spool_limit_answers_retry(s3_client: Any, bucket: str, tmp_path: Path) -> None:
    s = sink(s3_client, bucket, tmp_path, store_dir_limit_size=1000)
    assert s.write(batch(1, "t", records(20))) is Result.OK
    assert s.write(batch(2, "t", records(1))) is Result.RETRY
    assert s.stats["spool_full"] == 1
    s.close()


def test_retry_after_disk_error_spools_each_tag_once(
        s3_client: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = sink(s3_client, bucket, tmp_path, s3_key_format="/$TAG/$INDEX")
    real_append = s.spool.append
    calls = {"n": 0}

    def second_append_fails(obj: Any, data: bytes, records: int) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")  # injected ENOSPC
        real_append(obj, data, records)

    monkeypatch.setattr(s.spool, "append", second_append_fails)
    mixed = Batch(seq=9, entries=tuple(Entry(tag=t, time=T0, record=r) for t, r in
                                       [("a", {"i": 0}), ("b", {"i": 1})]))
    assert s.write(mixed) is Result.RETRY
    assert s.write(mixed) is Result.OK
    s.close()
    got = objects(s3_client, bucket)
    assert {k.split("/")[0]: lines(v) for k, v in got.items()} == {"a": [{"i": 0}],
                                                                  "b": [{"i": 1}]}


def test_one_spool_one_process(s3_client: Any, bucket: str, tmp_path: Path) -> None:
    from qtap_fluent.sinks.base import SinkError

    first = sink(s3_client, bucket, tmp_path)
    with pytest.raises(SinkError, match="in use by another process"):
        sink(s3_client, bucket, tmp_path)
    first.close()
    sink(s3_client, bucket, tmp_path).close()  # released on close
