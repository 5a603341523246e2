"""HTTP/1.x parser: framing cases llhttp handles and the ones we handle, split-invariant."""

from __future__ import annotations

import gzip

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qtap_fluent.agent.protocols.events import (
    Desync,
    RequestEnd,
    RequestHead,
    ResponseEnd,
    ResponseHead,
    Tunnel,
)
from qtap_fluent.agent.protocols.http1 import Http1Connection
from tests.agent import splitting

C, S = "feed_client", "feed_server"


def new() -> Http1Connection:
    return Http1Connection(body_limit=1024)


def heads(events: list[object]) -> list[tuple[str, int, object]]:
    out: list[tuple[str, int, object]] = []
    for e in events:
        if isinstance(e, RequestHead):
            out.append(("req", e.stream_id, f"{e.method} {e.target}"))
            if e.ended:  # stands for RequestEnd(body=EMPTY_BODY)
                out.append(("req-end", e.stream_id, b""))
        elif isinstance(e, ResponseHead):
            out.append(("res", e.stream_id, e.status))
        elif isinstance(e, RequestEnd):
            out.append(("req-end", e.stream_id, e.body.data))
        elif isinstance(e, ResponseEnd):
            out.append(("res-end", e.stream_id, e.body.data))
        elif isinstance(e, Tunnel):
            out.append(("tunnel", e.stream_id, e.reason))
        elif isinstance(e, Desync):
            out.append(("desync", 0, e.reason))
    return out


GZ = gzip.compress(b'{"ok":true}')

CASES: dict[str, tuple[list[tuple[str, bytes]], list[tuple[str, int, object]]]] = {
    "keepalive-pipelined": (
        [(C, b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"),
         (S, (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 404 NF\r\n"
             b"Content-Length: 2\r\n\r\nbb"))],
        [("req", 1, "GET /a"), ("req-end", 1, b""), ("req", 2, "GET /b"), ("req-end", 2, b""),
         ("res", 1, 200), ("res-end", 1, b"a"), ("res", 2, 404), ("res-end", 2, b"bb")]),
    "chunked-trailers-gzip": (
        [(C, (b"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"4\r\nab\r\n\r\n0\r\nX-Sum: 1\r\n\r\n")),
         (S, b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
             + f"{len(GZ):x}\r\n".encode() + GZ + b"\r\n0\r\n\r\n")],
        [("req", 1, "POST /p"), ("req-end", 1, b"ab\r\n"), ("res", 1, 200),
         ("res-end", 1, b'{"ok":true}')]),
    "1xx-then-final": (
        [(C, b"PUT /u HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"),
         (S, b"HTTP/1.1 100 Continue\r\n\r\n"), (C, b"hi"),
         (S, b"HTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")],
        [("req", 1, "PUT /u"), ("req-end", 1, b"hi"), ("res", 1, 204), ("res-end", 1, b"")]),
    "head-with-content-length": (
        [(C, b"HEAD /h HTTP/1.1\r\nHost: h\r\n\r\nGET /g HTTP/1.1\r\nHost: h\r\n\r\n"),
         (S, (b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
             b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nxyz"))],
        [("req", 1, "HEAD /h"), ("req-end", 1, b""), ("req", 2, "GET /g"), ("req-end", 2, b""),
         ("res", 1, 200), ("res-end", 1, b""), ("res", 2, 200), ("res-end", 2, b"xyz")]),
    "get-then-pipelined-head": (
        [(C, b"GET /g HTTP/1.1\r\nHost: h\r\n\r\nHEAD /h HTTP/1.1\r\nHost: h\r\n\r\n"),
         (S, (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n"
             b"Content-Length: 99\r\n\r\n"))],
        [("req", 1, "GET /g"), ("req-end", 1, b""), ("req", 2, "HEAD /h"), ("req-end", 2, b""),
         ("res", 1, 200), ("res-end", 1, b"ok"), ("res", 2, 200), ("res-end", 2, b"")]),
    "get-cut-in-body-then-pipelined-head": (
        # The GET's answer is cut inside its body; the next segment holds its rest and the
        # HEAD's answer (Content-Length, no body), which must still be cut here.
        [(C, b"GET /g HTTP/1.1\r\nHost: h\r\n\r\nHEAD /h HTTP/1.1\r\nHost: h\r\n\r\n"),
         (S, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\no"),
         (S, b"kHTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"),
         (C, b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n"),
         (S, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz")],
        [("req", 1, "GET /g"), ("req-end", 1, b""), ("req", 2, "HEAD /h"), ("req-end", 2, b""),
         ("res", 1, 200), ("res-end", 1, b"ok"), ("res", 2, 200), ("res-end", 2, b""),
         ("req", 3, "GET /x"), ("req-end", 3, b""), ("res", 3, 200), ("res-end", 3, b"z")]),
    "304-no-body": (
        [(C, b"GET /c HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"x\"\r\n\r\n"),
         (S, b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n")],
        [("req", 1, "GET /c"), ("req-end", 1, b""), ("res", 1, 304), ("res-end", 1, b"")]),
    "http10-close-delimited": (
        [(C, b"GET /old HTTP/1.0\r\n\r\n"), (S, b"HTTP/1.0 200 OK\r\n\r\nuntil close")],
        [("req", 1, "GET /old"), ("req-end", 1, b""), ("res", 1, 200),
         ("res-end", 1, b"until close")]),
    "connect-tunnel": (
        [(C, b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n"),
         (S, b"HTTP/1.1 200 Connection Established\r\n\r\n"), (C, b"\x16\x03\x01\x00\x05hello")],
        [("req", 1, "CONNECT h:443"), ("req-end", 1, b""), ("res", 1, 200), ("res-end", 1, b""),
         ("tunnel", 1, "CONNECT")]),
    "websocket-upgrade": (
        [(C, b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
         (S, (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
             b"Connection: Upgrade\r\n\r\n\x81\x05hello"))],
        [("req", 1, "GET /ws"), ("req-end", 1, b""), ("res", 1, 101), ("res-end", 1, b""),
         ("tunnel", 1, "101 Switching Protocols")]),
    "h2c-upgrade-hands-over": (
        [(C, (b"GET /u HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
             b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\n\r\n")),
         (S, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n\x00\x00\x00\x04\x00")],
        [("req", 1, "GET /u"), ("req-end", 1, b""), ("tunnel", 1, "h2c")]),
    "upgrade-refused-then-http": (
        [(C, b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"),
         (S, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1"),
         (C, b"GET /n HTTP/1.1\r\nHost: h\r\n\r\n"),
         (S, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2")],
        [("req", 1, "GET /ws"), ("req-end", 1, b""), ("res", 1, 200), ("res-end", 1, b"1"),
         ("req", 2, "GET /n"), ("req-end", 2, b""), ("res", 2, 200), ("res-end", 2, b"2")]),
    "response-without-request": (
        [(S, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")],
        [("desync", 0, "response without a request (capture started mid-connection)")]),
    "garbage-request": (
        [(C, b"GET / HTTP/1.1\r\nHost h\r\n\r\n")],
        [("desync", 0, "request: Invalid header token")]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_cases_whole_and_bytewise(name: str) -> None:
    script, expected = CASES[name]
    events = splitting.check(new, script)
    got = heads(events)
    if expected and expected[-1][0] == "desync":
        assert [g[0] for g in got] == [e[0] for e in expected]
    else:
        assert got == expected


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_random_cuts(data: st.DataObject) -> None:
    for name in sorted(CASES):
        script, _ = CASES[name]
        cuts = data.draw(splitting.cuts_for(script), label=name)
        assert splitting.run(new, script, cuts) == splitting.run(new, script), name


def test_body_limit_truncates_explicitly() -> None:
    p = Http1Connection(body_limit=4)
    p.feed_client(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    events = p.feed_server(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789")
    end = next(e for e in events if isinstance(e, ResponseEnd))
    assert end.body.data == b"0123" and end.body.truncated and end.body.wire_len == 10


def test_gap_inside_length_body_marks_truncated_and_keeps_framing() -> None:
    p = new()
    p.feed_client(b"GET / HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
    p.feed_server(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123")
    events = p.gap_server(4)
    events += p.feed_server(b"89HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz")
    ends = [e for e in events if isinstance(e, ResponseEnd)]
    assert ends[0].body.data == b"012389" and ends[0].body.truncated
    assert ends[1].body.data == b"z" and not ends[1].body.truncated


def test_gap_in_header_block_desynchronises() -> None:
    p = new()
    p.feed_client(b"GET / HTTP/1.1\r\nHo")
    events = p.gap_client(10)
    assert [type(e) for e in events] == [Desync]
    assert p.feed_client(b"GET / HTTP/1.1\r\n\r\n") == []


def test_headers_keep_order_and_repeats() -> None:
    p = new()
    events = p.feed_client(b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\n\r\n")
    head = events[0]
    assert isinstance(head, RequestHead)
    assert head.headers == (("Host", "h"), ("X-A", "1"), ("x-a", "2"))
    assert head.authority == "h" and head.version == "1.1"


def test_non_utf8_header_bytes_become_replacement_characters() -> None:
    # Go's JSON encoder writes invalid UTF-8 as U+FFFD; valid UTF-8 stays as it is. A block
    # with one bad field decodes every field the same way as a clean block would. (llhttp
    # takes only token characters in names and ASCII in the target: values carry the bytes.)
    script = [(C, (b"POST /a HTTP/1.1\r\nHost: h\r\nX-Bad: caf\xe9\r\nX-Ok: \xc3\xa9\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-T: v\xfe\r\n\r\n")),
              (S, b"HTTP/1.1 200 OK\r\nX-A: \xc3\xa9\xff\r\nContent-Length: 0\r\n\r\n")]
    events = splitting.check(new, script)
    head, end, res = events[0], events[1], events[2]
    assert isinstance(head, RequestHead) and isinstance(end, RequestEnd)
    assert isinstance(res, ResponseHead)
    assert head.headers[1:3] == (("X-Bad", "caf\ufffd"), ("X-Ok", "é"))
    assert end.trailers == (("X-T", "v\ufffd"),)
    assert res.headers[0] == ("X-A", "é\ufffd")


def test_head_answers_are_cut_with_other_requests_in_between() -> None:
    # The HEAD counter decides when the response side cuts header blocks itself: a GET, a
    # HEAD and a GET pipelined, their answers in one segment and byte by byte.
    script = [(C, (b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nHEAD /b HTTP/1.1\r\nHost: h\r\n\r\n"
                   b"GET /c HTTP/1.1\r\nHost: h\r\n\r\n")),
              (S, (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
                   b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"
                   b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nc"))]
    assert [h for h in heads(splitting.check(new, script)) if h[0].startswith("res")] == [
        ("res", 1, 200), ("res-end", 1, b"a"), ("res", 2, 200), ("res-end", 2, b""),
        ("res", 3, 200), ("res-end", 3, b"c")]
    p = new()
    for step, data in script:
        getattr(p, step)(data)
    assert p.headless == 0 and not p.pending


def test_body_in_one_piece_and_in_pieces_agree() -> None:
    # on_body builds a one-piece Content-Length body without a collector: the same Body as the
    # collector gives, for a body that fits, one over the limit, and one after a gap.
    script = [(C, b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"),
              (S, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc")]
    events = splitting.check(new, script)
    ends = [e for e in events if isinstance(e, (RequestEnd, ResponseEnd))]
    assert [(e.body.data, e.body.truncated, e.body.wire_len) for e in ends] == [
        (b"hello", False, 5), (b"abc", False, 3)]
    p = Http1Connection(body_limit=4)
    p.feed_client(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    end = p.feed_server(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n01234")[-1]
    assert isinstance(end, ResponseEnd)
    assert (end.body.data, end.body.truncated, end.body.wire_len) == (b"0123", True, 5)
