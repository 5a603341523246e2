"""CloudWatch sink against a real moto server; every request checked against the real limits.

moto accepts requests that AWS refuses (over 1 MiB, over 10,000 events), so a ``before-call``
hook on the real botocore client decodes each PutLogEvents body the sink sends and checks it.
Throttling is *injected*: a ``before-call`` hook answers the first N calls with a 400
ThrottlingException instead of sending them (moto never throttles).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from qtap_fluent.sinks.base import Batch, Entry, Result
from qtap_fluent.sinks.cloudwatch import CloudWatchSink
from qtap_fluent.sinks.limits import (
    CW_EVENT_OVERHEAD,
    CW_MAX_BATCH_BYTES,
    CW_MAX_BATCH_EVENTS,
    CW_MAX_EVENT_BYTES,
    CW_MAX_SPAN_MS,
)

NOW_MS = int(time.time() * 1000) - 2 * 24 * 3600 * 1000  # inside CloudWatch's 14-day window


class Wire:
    """Every PutLogEvents request body, checked against the PutLogEvents limits."""

    def __init__(self, client: Any) -> None:
        self.requests: list[list[dict[str, Any]]] = []
        client.meta.events.register("before-call.cloudwatch-logs.PutLogEvents", self.check)

    def check(self, params: dict[str, Any], **kw: Any) -> None:
        events = json.loads(params["body"])["logEvents"]
        self.requests.append(events)
        sizes = [len(e["message"].encode()) + CW_EVENT_OVERHEAD for e in events]
        stamps = [e["timestamp"] for e in events]
        assert 1 <= len(events) <= CW_MAX_BATCH_EVENTS
        assert sum(sizes) <= CW_MAX_BATCH_BYTES
        assert max(sizes) <= CW_MAX_EVENT_BYTES
        assert stamps == sorted(stamps), "chronological order"
        assert stamps[-1] - stamps[0] < CW_MAX_SPAN_MS

    @property
    def shape(self) -> list[int]:
        return [len(r) for r in self.requests]


def make_sink(client: Any, **kw: Any) -> tuple[CloudWatchSink, str, Wire]:
    group = "g-" + uuid.uuid4().hex[:10]
    kw.setdefault("log_stream_name", "s")
    s = CloudWatchSink(client=client, log_group_name=group, auto_create_group=True,
                       log_key="log", sleep=lambda _s: None, **kw)
    s.open()
    return s, group, Wire(client)


def logs(msgs: list[str], stamps: list[int] | None = None) -> Batch:
    stamps = stamps or [NOW_MS + i for i in range(len(msgs))]
    return Batch(seq=1, entries=tuple(Entry(tag="t", time=ts / 1000, record={"log": m})
                                      for m, ts in zip(msgs, stamps, strict=True)))


def stored(client: Any, group: str, stream: str = "s") -> list[str]:
    out: list[str] = []
    kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream,
                              "startFromHead": True}
    while True:
        resp = client.get_log_events(**kwargs)
        out.extend(e["message"] for e in resp["events"])
        if not resp["events"]:
            return out
        kwargs["nextToken"] = resp["nextForwardToken"]


@pytest.mark.parametrize(("n", "shape"), [(CW_MAX_BATCH_EVENTS, [10_000]),
                                          (CW_MAX_BATCH_EVENTS + 1, [10_000, 1])])
def test_count_edge(logs_client: Any, n: int, shape: list[int]) -> None:
    s, group, wire = make_sink(logs_client)
    msgs = [f"m{i}" for i in range(n)]
    assert s.write(logs(msgs)) is Result.OK
    assert wire.shape == shape
    assert stored(logs_client, group) == msgs


@pytest.mark.parametrize(("extra", "shape"), [(0, [16]), (1, [15, 1])])
def test_byte_edge_counts_26_bytes_per_event(logs_client: Any, extra: int,
                                             shape: list[int]) -> None:
    # 16 events of 65,536 bytes each (message + 26) fill 1,048,576 exactly.
    body = 65_536 - CW_EVENT_OVERHEAD
    msgs = [("x" * (body + (extra if i == 0 else 0)))[:-4] + f"{i:04d}" for i in range(16)]
    s, group, wire = make_sink(logs_client)
    assert s.write(logs(msgs)) is Result.OK
    assert wire.shape == shape
    assert stored(logs_client, group) == msgs


def test_byte_edge_uses_utf8_length(logs_client: Any) -> None:
    # "é" is 2 bytes: counting characters would put 17 events where only 8 fit.
    msgs = ["é" * 65_000 for _ in range(17)]
    s, _group, wire = make_sink(logs_client)
    assert s.write(logs(msgs)) is Result.OK
    assert sum(wire.shape) == 17 and len(wire.shape) == 3


@pytest.mark.parametrize(("gap", "shape"), [(CW_MAX_SPAN_MS - 1, [2]),
                                            (CW_MAX_SPAN_MS, [1, 1])])
def test_24_hour_span_edge(logs_client: Any, gap: int, shape: list[int]) -> None:
    start = int(time.time() * 1000) - 3 * 24 * 3600 * 1000
    s, group, wire = make_sink(logs_client)
    assert s.write(logs(["a", "b"], [start, start + gap])) is Result.OK
    assert wire.shape == shape
    assert stored(logs_client, group) == ["a", "b"]


def test_events_are_sent_in_chronological_order(logs_client: Any) -> None:
    stamps = [NOW_MS + i * 7 for i in range(500)]
    random.Random(7).shuffle(stamps)
    msgs = [str(ts) for ts in stamps]
    s, group, _wire = make_sink(logs_client)
    assert s.write(logs(msgs, stamps)) is Result.OK
    assert stored(logs_client, group) == sorted(msgs, key=int)


def test_max_event_size_edge(logs_client: Any) -> None:
    fits = "a" * (CW_MAX_EVENT_BYTES - CW_EVENT_OVERHEAD)
    too_big = fits + "a"
    s, group, wire = make_sink(logs_client)
    assert s.write(logs([fits, too_big, "small"])) is Result.OK
    assert wire.shape == [1, 1]
    assert s.stats["too_large"] == 1
    assert stored(logs_client, group) == [fits, "small"]


def inject_throttling(client: Any, calls: set[int]) -> list[int]:
    """Answer the PutLogEvents calls numbered in ``calls`` (1-based) with ThrottlingException."""
    seen: list[int] = []

    def hook(**kw: Any) -> Any:
        seen.append(len(seen) + 1)
        if seen[-1] in calls:
            return (SimpleNamespace(status_code=400, headers={}),
                    {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded "
                               "(injected by the test)"}, "ResponseMetadata": {}})
        return None

    client.meta.events.register_first("before-call.cloudwatch-logs.PutLogEvents", hook)
    return seen


def test_throttling_survived_with_backoff(logs_client: Any) -> None:
    delays: list[float] = []
    s, group, _wire = make_sink(logs_client)
    s.sleep = delays.append
    inject_throttling(logs_client, {1, 2, 3})
    assert s.write(logs(["a", "b", "c"])) is Result.OK
    assert stored(logs_client, group) == ["a", "b", "c"]
    assert s.stats["throttled"] == 3
    assert len(delays) == 3 and delays[0] < delays[2]


def test_retry_resumes_without_duplicates(logs_client: Any) -> None:
    s, group, _wire = make_sink(logs_client, max_attempts=2)
    msgs = [f"m{i}" for i in range(25_000)]  # three requests: 10,000 + 10,000 + 5,000
    inject_throttling(logs_client, {2, 3})  # request 2 throttled twice: give up for now
    assert s.write(logs(msgs)) is Result.RETRY
    assert s.write(logs(msgs)) is Result.OK  # same seq: resumes at request 2
    assert stored(logs_client, group) == msgs


def test_group_stream_and_retention_created(logs_client: Any) -> None:
    s, group, _ = make_sink(logs_client, log_stream_name=None, log_stream_prefix="p-",
                            log_retention_days=14)
    assert s.write(Batch(seq=1, entries=(Entry(tag="a.b", time=NOW_MS / 1000,
                                               record={"log": "x"}),))) is Result.OK
    [g] = logs_client.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert g["retentionInDays"] == 14
    assert stored(logs_client, group, "p-a.b") == ["x"]


def test_bad_options_are_clear_errors(logs_client: Any) -> None:
    from qtap_fluent.sinks.base import SinkError

    with pytest.raises(SinkError, match="exactly one of"):
        CloudWatchSink(client=logs_client, log_group_name="g")
    with pytest.raises(SinkError, match="log_retention_days 2 "):
        CloudWatchSink(client=logs_client, log_group_name="g", log_stream_name="s",
                       log_retention_days=2)
