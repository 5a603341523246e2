"""Tracker: roles from first bytes, eviction, limits, lost events, gaps, container lookup."""

from __future__ import annotations

from qtap_fluent.agent.events import (
    Address,
    CloseEvent,
    DataEvent,
    Direction,
    LostEvent,
    Origin,
)
from qtap_fluent.agent.tracker import ConnInfo, Limits, Tracker

REQ = b"GET /x HTTP/1.1\r\nHost: h.example\r\n\r\n"
RES = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
S = 1_000_000_000


def ev(data: bytes, direction: Direction, ts: int = 0, conn: int = 1,
       origin: Origin = Origin.CONNECT, real_len: int | None = None, pid: int = 5) -> DataEvent:
    return DataEvent(conn_id=conn, pid=pid, tid=pid, exe="/bin/app", direction=direction,
                     local=Address(ip="10.0.0.1", port=1000),
                     remote=Address(ip="10.0.0.2", port=80), origin=origin, tls=False,
                     ts_ns=ts, data=data,
                     real_len=len(data) if real_len is None else real_len)


def test_unknown_origin_roles_from_first_bytes() -> None:
    t = Tracker()
    t.handle(ev(REQ, Direction.INBOUND, origin=Origin.UNKNOWN))
    [ex] = t.handle(ev(RES, Direction.OUTBOUND, ts=S, origin=Origin.UNKNOWN))
    assert ex.direction == "ingress" and not ex.client and ex.status == 200
    assert ex.bytes_received == len(REQ) and ex.bytes_sent == len(RES)


def test_detection_waits_for_enough_bytes() -> None:
    t = Tracker()
    for i, b in enumerate(REQ):
        assert t.handle(ev(bytes([b]), Direction.OUTBOUND, ts=i)) == []
    [ex] = t.handle(ev(RES, Direction.INBOUND, ts=S))
    assert ex.request.target == "/x"


def test_non_http_is_ignored_quietly() -> None:
    t = Tracker()
    t.handle(ev(b"\x16\x03\x01\x02\x00\x01\x00", Direction.OUTBOUND))
    assert t.conns[1].state == "other" and t.counters.connections_desynchronised == 0


def test_idle_eviction_ends_open_requests_with_499() -> None:
    t = Tracker(limits=Limits(idle_timeout_ns=10 * S))
    t.handle(ev(REQ, Direction.OUTBOUND, ts=0))
    t.handle(ev(REQ, Direction.OUTBOUND, ts=5 * S, conn=2))
    assert t.evict(9 * S) == []
    [ex] = t.evict(12 * S)
    assert ex.conn_id == 1 and ex.status == 499 and ex.end_ts_ns == 12 * S
    assert list(t.conns) == [2] and t.counters.connections_evicted == 1


def test_eviction_goes_by_last_use_not_by_first_sight() -> None:
    # conn 1 is seen first but used again later: the idle one is conn 2, and eviction stops at
    # the first connection still in use (least recently used first).
    t = Tracker(limits=Limits(idle_timeout_ns=10 * S))
    t.handle(ev(REQ, Direction.OUTBOUND, ts=0, conn=1))
    t.handle(ev(REQ, Direction.OUTBOUND, ts=1 * S, conn=2))
    t.handle(ev(RES, Direction.INBOUND, ts=6 * S, conn=1))
    assert list(t.conns) == [2, 1]
    [ex] = t.evict(12 * S)
    assert ex.conn_id == 2 and ex.status == 499
    assert list(t.conns) == [1]
    t.handle(CloseEvent(conn_id=1, pid=5, ts_ns=13 * S))
    assert not t.conns


def test_connection_limit_refuses_and_counts() -> None:
    t = Tracker(limits=Limits(max_connections=2))
    for conn in (1, 2, 3):
        t.handle(ev(REQ, Direction.OUTBOUND, conn=conn))
    assert sorted(t.conns) == [1, 2] and t.counters.connections_refused == 1
    t.handle(CloseEvent(conn_id=1, pid=5, ts_ns=S))
    t.handle(ev(REQ, Direction.OUTBOUND, conn=3))
    assert sorted(t.conns) == [2, 3]


def test_lost_events_and_truncated_bytes_are_counted() -> None:
    t = Tracker()
    t.handle(LostEvent(count=7, reason="ringbuf full", ts_ns=0))
    t.handle(ev(REQ, Direction.OUTBOUND))
    # the 8 lost bytes complete the 10-byte body: the exchange ends with this event
    [ex] = t.handle(ev(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01", Direction.INBOUND,
                       real_len=39 + 2 + 8))
    assert t.counters.events_lost == 7 and t.counters.bytes_truncated == 8
    assert ex.response_body is not None and ex.response_body.truncated
    assert ex.response_body.data == b"01"


def test_container_lookup_called_once_per_connection() -> None:
    calls: list[int] = []

    def lookup(pid: int) -> str | None:
        calls.append(pid)
        return "c" * 64

    t = Tracker(container_lookup=lookup)
    t.handle(ev(REQ, Direction.OUTBOUND, pid=42))
    [ex] = t.handle(ev(RES, Direction.INBOUND, pid=42))
    assert calls == [42] and ex.container_id == "c" * 64


def test_filter_decides_once_and_skips_parsing() -> None:
    seen: list[ConnInfo] = []

    def accept(info: ConnInfo) -> bool:
        seen.append(info)
        return False

    t = Tracker(accept=accept)
    t.handle(ev(REQ, Direction.OUTBOUND))
    assert t.handle(ev(RES, Direction.INBOUND)) == []
    assert len(seen) == 1 and seen[0].direction == "egress-internal"
    assert t.counters.connections_ignored == 1


def test_body_memory_bound_across_connections() -> None:
    t = Tracker(limits=Limits(body_memory=100, body_limit=80))
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    for conn in (1, 2):
        t.handle(ev(REQ, Direction.OUTBOUND, conn=conn))
        t.handle(ev(head + b"x" * 60, Direction.INBOUND, conn=conn))
    assert t.budget.used == 100  # 60 + 40: the second body was cut by the shared bound
    [ex1] = t.handle(CloseEvent(conn_id=1, pid=5, ts_ns=S))
    [ex2] = t.handle(CloseEvent(conn_id=2, pid=5, ts_ns=S))
    assert ex1.response_body is not None and len(ex1.response_body.data) == 60
    assert ex2.response_body is not None and len(ex2.response_body.data) == 40
    assert ex2.response_body.truncated and t.budget.used == 0
    assert t.sync_counters().body_bytes_dropped == 20


def test_abandoned_bodies_give_their_memory_back() -> None:
    t = Tracker(limits=Limits(body_memory=1000))
    t.handle(ev(REQ, Direction.OUTBOUND))
    t.handle(ev(b"HTTP/1.1 200 OK\r\nContent-Length: 900\r\n\r\n" + b"y" * 500,
                Direction.INBOUND))
    assert t.budget.used == 500
    t.handle(ev(b"", Direction.INBOUND, real_len=5000))  # a gap past the body: desync
    assert t.conns[1].state == "desync"
    t.handle(CloseEvent(conn_id=1, pid=5, ts_ns=S))
    assert t.budget.used == 0


def test_bodies_are_the_same_however_the_request_ended() -> None:
    # A body-less request ends with its head (RequestHead.ended, no RequestEnd); one with a
    # body ends with a RequestEnd; a one-piece response body skips the collector. The
    # exchanges carry the same Body values either way: EMPTY_BODY for no body, never None.
    from qtap_fluent.agent.protocols.events import EMPTY_BODY

    t = Tracker()
    t.handle(ev(REQ, Direction.OUTBOUND))
    [get] = t.handle(ev(RES, Direction.INBOUND, ts=S))
    assert get.request.ended and get.request_body is EMPTY_BODY
    assert get.response_body is not None and get.response_body.data == b"ok"
    assert (get.response_body.truncated, get.response_body.wire_len) == (False, 2)
    post = b"POST /p HTTP/1.1\r\nHost: h.example\r\nContent-Length: 3\r\n\r\nabc"
    t.handle(ev(post, Direction.OUTBOUND, ts=2 * S))
    [ex] = t.handle(ev(RES, Direction.INBOUND, ts=3 * S))
    assert not ex.request.ended and ex.request_body is not None
    assert (ex.request_body.data, ex.request_body.wire_len) == (b"abc", 3)
    assert ex.bytes_sent == len(post) and ex.bytes_received == len(RES)
