"""Pure parts of the sinks: batcher, key format, option values, file and stdout sinks."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qtap_fluent.sinks import SINKS, SinkContext, SinkError, build_sink
from qtap_fluent.sinks.base import Batch, Entry, Result, dumps_record
from qtap_fluent.sinks.batching import Batcher
from qtap_fluent.sinks.file import FileSink
from qtap_fluent.sinks.options import parse_size, parse_time
from qtap_fluent.sinks.s3keys import format_key
from qtap_fluent.sinks.stdout import StdoutSink


def test_batcher_cuts_before_the_item_that_overflows_bytes() -> None:
    b: Batcher[str] = Batcher(max_count=100, max_bytes=10, max_age=5)
    assert b.add("a", 4, 0) == []
    assert b.add("b", 4, 0) == []
    assert b.add("c", 4, 0) == [["a", "b"]]
    assert b.add("d", 6, 0) == [["c", "d"]]  # exactly full: emitted at once
    assert b.pending == 0


def test_batcher_count_and_age() -> None:
    b: Batcher[int] = Batcher(max_count=3, max_bytes=1000, max_age=5)
    assert b.add(1, 1, 10.0) == [] and b.add(2, 1, 11.0) == []
    assert b.add(3, 1, 12.0) == [[1, 2, 3]]
    b.add(4, 1, 20.0)
    assert b.poll(24.9) is None
    assert b.deadline() == 25.0
    assert b.poll(25.0) == [4]
    assert b.poll(100.0) is None


def test_oversized_item_travels_alone() -> None:
    b: Batcher[str] = Batcher(max_count=10, max_bytes=10, max_age=1)
    b.add("small", 2, 0)
    assert b.add("huge", 50, 0) == [["small"], ["huge"]]


@given(st.lists(st.integers(min_value=1, max_value=30), max_size=200),
       st.integers(min_value=1, max_value=7))
def test_batcher_keeps_every_item_in_order_within_limits(sizes: list[int], count: int) -> None:
    b: Batcher[int] = Batcher(max_count=count, max_bytes=40, max_age=1e9)
    out: list[list[int]] = []
    for i, size in enumerate(sizes):
        out.extend(b.add(i, size, 0))
    out.append(b.drain())
    assert [i for batch in out for i in batch] == list(range(len(sizes)))
    for batch in out:
        assert len(batch) <= count
        assert len(batch) == 1 or sum(sizes[i] for i in batch) <= 40


def test_key_tokens() -> None:
    t = 1_700_000_000.0  # 2023-11-14T22:13:20Z
    key = format_key("/$TAG[0]/$TAG[2]/$TAG[9]/$TAG/%Y%m%dT%H%M%SZ/$INDEX-$UUID", tag="a.b.c",
                     time_s=t, index=42, uuid="AbCd1234")
    assert key == "a/c/$TAG[9]/a.b.c/20231114T221320Z/42-AbCd1234"
    assert format_key("/x/$TAG[1]", tag="a_b-c", time_s=t, index=0, uuid="u",
                      delimiters="_-") == "x/b"
    assert format_key("/$TAG", tag="100%d", time_s=t, index=0, uuid="u") == "100%d"


def test_sizes_and_times_fluent_bit_style() -> None:
    assert parse_size("5M") == 5_000_000 and parse_size("1.5k") == 1500
    assert parse_size(5242880) == 5242880
    assert parse_time("10m") == 600 and parse_time("2h") == 7200 and parse_time(30) == 30
    with pytest.raises(ValueError, match="not a size"):
        parse_size("5X")


def test_registry_errors_name_the_option(tmp_path: Path) -> None:
    ctx = SinkContext(spool_dir=tmp_path)
    with pytest.raises(SinkError, match="unknown output 'nope'"):
        build_sink("nope", {}, ctx)
    with pytest.raises(SinkError, match="option 'total_file_size': '5X' is not a size"):
        build_sink("s3", {"bucket": "b", "total_file_size": "5X"}, ctx)
    with pytest.raises(SinkError, match="unknown option.*: colour"):
        build_sink("file", {"path": str(tmp_path / "f"), "colour": "red"}, ctx)
    with pytest.raises(SinkError, match="must start with '/'"):
        build_sink("s3", {"bucket": "b", "s3_key_format": "x/$TAG"}, ctx)
    assert {"s3", "cloudwatch_logs", "file", "stdout", "forward"} <= set(SINKS)


def entries(n: int, start: int = 0) -> Batch:
    return Batch(seq=start, entries=tuple(Entry(tag="t", time=1.5, record={"i": i})
                                          for i in range(start, start + n)))


def test_file_sink_rotates_and_keeps_every_line(tmp_path: Path) -> None:
    path = tmp_path / "out" / "x.jsonl"
    s = FileSink(path=path, max_bytes=100, keep=10, json_date_key=None)
    s.open()
    for k in range(10):
        assert s.write(entries(3, k * 3)) is Result.OK
    s.close()
    files = sorted(tmp_path.joinpath("out").iterdir(),
                   key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    got = [json.loads(line)["i"] for f in files for line in f.read_text().splitlines()]
    assert got == list(range(30))
    assert s.rotations >= 2
    assert all(f.stat().st_size <= 100 for f in files)


def test_file_sink_drops_oldest_beyond_keep(tmp_path: Path) -> None:
    s = FileSink(path=tmp_path / "x", max_bytes=10, keep=2, json_date_key=None)
    s.open()
    for k in range(5):
        s.write(entries(1, k))
    s.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x", "x.1", "x.2"]
    assert json.loads((tmp_path / "x").read_text())["i"] == 4


def test_stdout_json_lines_with_date() -> None:
    buf = io.BytesIO()
    s = StdoutSink(stream=buf)
    s.open()
    assert s.write(entries(2)) is Result.OK
    assert [json.loads(x) for x in buf.getvalue().splitlines()] == [
        {"date": 1.5, "i": 0}, {"date": 1.5, "i": 1}]


def test_dumps_record_survives_bytes_and_nan() -> None:
    assert dumps_record({"b": b"\xff", "n": float("nan")}) == '{"b":"\ufffd","n":null}'


def test_std_and_fast_json_paths_agree() -> None:
    from qtap_fluent.sinks.base import _dumps_std, _line, _line_std

    rec = {"a": [1, 2.5, None, True], "s": "héllo \u2028 \"q\"", "n": {"x": {}}, "b": b"ok"}
    assert dumps_record(rec) == _dumps_std(rec)
    assert _line(rec) == _line_std(rec) == (_dumps_std(rec) + "\n").encode()
    big = {"n": 2**70, "nan": float("nan")}  # orjson refuses big ints: the fallback takes it
    assert _line(big) == b'{"n":1180591620717411303424,"nan":null}\n'
    assert json.loads(dumps_record(rec)) == {**rec, "b": "ok"}


def test_batcher_age_by_item_time_cuts_before() -> None:
    b: Batcher[str] = Batcher(max_count=100, max_bytes=100, max_age=10)
    assert b.add("a", 1, 0) == [] and b.add("b", 1, 9.999) == []
    assert b.add("c", 1, 10) == [["a", "b"]]


@given(st.lists(st.tuples(st.integers(min_value=0, max_value=3 * 86_400_000),
                          st.integers(min_value=0, max_value=300_000)), max_size=60))
def test_plan_requests_respects_every_limit(spec: list[tuple[int, int]]) -> None:
    from qtap_fluent.sinks.cloudwatch import LogEvent, plan_requests
    from qtap_fluent.sinks.limits import (
        CW_MAX_BATCH_BYTES,
        CW_MAX_BATCH_EVENTS,
        CW_MAX_EVENT_BYTES,
        CW_MAX_SPAN_MS,
    )

    # Sizes stand in for messages; a LogEvent's size already includes the 26 bytes.
    events = [LogEvent(ts, str(i), size * 4 + 26) for i, (ts, size) in enumerate(spec)]
    requests, too_large = plan_requests(events)
    sent = [e for r in requests for e in r]
    assert sorted(sent + too_large, key=lambda e: int(e.message)) == events
    assert all(e.size > CW_MAX_EVENT_BYTES for e in too_large)
    assert [e.timestamp for e in sent] == sorted(e.timestamp for e in sent)
    for r in requests:
        assert 1 <= len(r) <= CW_MAX_BATCH_EVENTS
        assert sum(e.size for e in r) <= CW_MAX_BATCH_BYTES
        assert r[-1].timestamp - r[0].timestamp < CW_MAX_SPAN_MS
