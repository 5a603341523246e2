"""Hostile or broken traffic never raises out of the core: it desynchronises or is ignored."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qtap_fluent.agent.events import Address, CloseEvent, DataEvent, Direction, Origin
from qtap_fluent.agent.protocols.http1 import Http1Connection
from qtap_fluent.agent.protocols.http2 import PREFACE, Http2Connection
from qtap_fluent.agent.tracker import Tracker
from tests.agent.h2wire import Side, request

PREFIXES = [b"", b"GET / HTTP/1.1\r\nHost: a\r\n", b"HTTP/1.1 200 OK\r\n", PREFACE,
            PREFACE + Side().headers(1, request(1, "/"))]

steps = st.lists(st.tuples(st.booleans(), st.sampled_from(PREFIXES), st.binary(max_size=200),
                           st.integers(min_value=0, max_value=64)), max_size=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=steps)
def test_parsers_never_raise(script: list[tuple[bool, bytes, bytes, int]]) -> None:
    for cls in (Http1Connection, Http2Connection):
        p = cls(1024)
        for client, prefix, junk, lost in script:
            if client:
                p.feed_client(prefix + junk)
                if lost:
                    p.gap_client(lost)
            else:
                p.feed_server(prefix + junk)
                if lost:
                    p.gap_server(lost)
        p.close()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=steps, origin=st.sampled_from(list(Origin)))
def test_tracker_never_raises(script: list[tuple[bool, bytes, bytes, int]],
                              origin: Origin) -> None:
    t = Tracker()
    ts = 0
    for out, prefix, junk, lost in script:
        data = prefix + junk
        ts += 1000
        t.handle(DataEvent(
            conn_id=1, pid=1, tid=1, exe="/x", ts_ns=ts, data=data, real_len=len(data) + lost,
            direction=Direction.OUTBOUND if out else Direction.INBOUND,
            local=Address(ip="10.0.0.1", port=1), remote=Address(ip="10.0.0.2", port=2),
            origin=origin, tls=False))
    t.handle(CloseEvent(conn_id=1, pid=1, ts_ns=ts + 1))
    assert not t.conns
    assert t.budget.used == 0  # every body's memory was given back
