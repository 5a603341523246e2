"""HTTP/2 observer: streams, CONTINUATION, padding, RST_STREAM, trailers, gRPC, desync."""

from __future__ import annotations

import gzip

from hypothesis import given, settings
from hypothesis import strategies as st

from qtap_fluent.agent.protocols.events import (
    Desync,
    RequestEnd,
    RequestHead,
    ResponseEnd,
    ResponseHead,
    StreamReset,
)
from qtap_fluent.agent.protocols.http2 import Http2Connection
from tests.agent import splitting
from tests.agent.h2wire import PREFACE, Side, request

C, S = "feed_client", "feed_server"


def new() -> Http2Connection:
    return Http2Connection(body_limit=4096)


def exchange_script() -> list[tuple[str, bytes]]:
    c, s = Side(), Side()
    big = [("x-long", "v" * 300)]
    return [
        (C, PREFACE + c.settings(HEADER_TABLE_SIZE=4096)
         + c.headers(1, request(1, "/one?q=1"), end_stream=True)
         + c.headers(3, request(3, "/two", "POST", extra=[("content-type", "application/json")]),
                     split=5, pad=3)
         + c.data(3, b'{"a":', pad=7) + c.data(3, b"1}", end_stream=True)
         + c.headers(5, request(5, "/three", extra=big), end_stream=True)),
        (S, s.settings() + s.headers(3, [(":status", "100")])
         + s.headers(3, [(":status", "201"), ("content-encoding", "gzip")])
         + s.headers(1, [(":status", "200"), ("content-type", "text/plain")])
         + s.data(3, gzip.compress(b"created"), end_stream=True)
         + s.data(1, b"hello ") + s.data(1, b"world", end_stream=True)
         + s.rst(5, 8)),
        (C, c.headers(7, request(7, "/grpc.Svc/Call", "POST",
                                 extra=[("content-type", "application/grpc")]))
         + c.data(7, b"\x00\x00\x00\x00\x02hi", end_stream=True)),
        (S, s.headers(7, [(":status", "200"), ("content-type", "application/grpc")])
         + s.data(7, b"\x00\x00\x00\x00\x02yo")
         + s.headers(7, [("grpc-status", "0"), ("grpc-message", "")], end_stream=True)),
    ]


def test_streams_whole_and_bytewise() -> None:
    events = splitting.check(new, exchange_script())
    reqs = {e.stream_id: e for e in events if isinstance(e, RequestHead)}
    assert {k: (v.method, v.target, v.authority) for k, v in reqs.items()} == {
        1: ("GET", "/one?q=1", "example.com"), 3: ("POST", "/two", "example.com"),
        5: ("GET", "/three", "example.com"), 7: ("POST", "/grpc.Svc/Call", "example.com")}
    assert reqs[7].grpc and not reqs[1].grpc
    req_bodies = {e.stream_id: e.body.data for e in events if isinstance(e, RequestEnd)}
    assert req_bodies[3] == b'{"a":1}'
    statuses = {e.stream_id: e.status for e in events if isinstance(e, ResponseHead)}
    assert statuses == {1: 200, 3: 201, 7: 200}  # the 100 is skipped
    ends = {e.stream_id: e for e in events if isinstance(e, ResponseEnd)}
    assert ends[1].body.data == b"hello world"
    assert ends[3].body.data == b"created"  # gzip decoded
    assert ends[7].trailers == (("grpc-status", "0"), ("grpc-message", ""))
    assert [e.stream_id for e in events if isinstance(e, StreamReset)] == [5]
    assert not any(isinstance(e, Desync) for e in events)


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_random_cuts(data: st.DataObject) -> None:
    script = exchange_script()
    cuts = data.draw(splitting.cuts_for(script))
    assert splitting.run(new, script, cuts) == splitting.run(new, script)


def test_mid_connection_start_is_desync() -> None:
    c = Side()
    p = new()
    events = p.feed_client(c.headers(1, request(1, "/"), end_stream=True))
    assert [type(e) for e in events] == [Desync]


def test_lost_header_bytes_desync_but_lost_data_bytes_truncate() -> None:
    c, s = Side(), Side()
    p = new()
    p.feed_client(PREFACE + c.headers(1, request(1, "/a"), end_stream=True))
    data = s.data(1, b"0123456789", end_stream=True)
    head = s.headers(1, [(":status", "200")])
    events = p.feed_server(head + data[:12])
    events += p.gap_server(4)
    events += p.feed_server(data[16:])
    end = next(e for e in events if isinstance(e, ResponseEnd))
    assert end.body.truncated
    p2 = new()
    p2.feed_client(PREFACE)
    hdr = c.headers(1, request(1, "/b"), end_stream=True)
    p2.feed_client(hdr[:11])
    assert [type(e) for e in p2.gap_client(3)] == [Desync]


def test_continuation_interrupted_is_desync() -> None:
    c = Side()
    p = new()
    block = c.headers(1, request(1, "/x" * 20), split=4)
    first_frame_len = 9 + int.from_bytes(block[:3], "big")
    events = p.feed_client(PREFACE + block[:first_frame_len] + c.data(1, b"x"))
    assert [type(e) for e in events] == [Desync]
