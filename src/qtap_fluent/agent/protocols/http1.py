"""HTTP/1.x, sans-I/O: one llhttp request parser and one response parser per connection.

llhttp (through httptools) does the framing: keep-alive, pipelining, chunked bodies and
trailers, 204/304 and 1xx without bodies. What it leaves to us (RFC 9112 §6.3):

* a response to HEAD has no body even with Content-Length, and the response parser cannot be
  told so: we cut that header block ourselves, parse it alone and start a fresh parser;
* a 2xx answer to CONNECT, or 101 Switching Protocols, ends HTTP/1 on the connection (a
  tunnel); for ``Upgrade: h2c`` the tracker hands the connection to the HTTP/2 parser, with the
  upgrade request as stream 1 (RFC 7540 §3.2) and the bytes seen after the 101 (``upgraded_bytes``);
* a response without Content-Length or chunking runs to the close (HTTP/1.0 style): ``close()``.

Bytes the capture lost (``gap``) are skipped inside a length- or close-delimited body (the body
is marked truncated); anywhere else they desynchronise the connection.
"""

from __future__ import annotations

from collections import deque

import httptools

from qtap_fluent.agent.protocols.body import UNLIMITED, BodyCollector, Budget
from qtap_fluent.agent.protocols.events import (
    EMPTY_BODY,
    Body,
    Desync,
    Headers,
    ProtocolEvent,
    Tunnel,
    new_body,
    new_request_end,
    new_request_head,
    new_response_end,
    new_response_head,
)

#: Methods whose response framing llhttp cannot know from the response alone (RFC 9112 §6.3).
_HEADLESS_BODY = frozenset({"HEAD", "CONNECT"})
#: len("host"), len("content-length"), len("content-encoding"), len("transfer-encoding")
_SCANNED_NAME_LENGTHS = frozenset({4, 14, 16, 17})
#: Largest header block we buffer when cutting it ourselves (llhttp's own default is 80 KiB).
MAX_HEADER_BLOCK = 80 * 1024
#: Bytes a client may send after an Upgrade/CONNECT request before the answer; kept bounded.
MAX_HELD = 64 * 1024


#: What makes llhttp stop inside a feed: the end of HTTP/1 (Upgrade/CONNECT) or an error.
_STOPS = (httptools.HttpParserUpgrade, httptools.HttpParserError)

#: llhttp's method names, decoded once (it knows a fixed set of methods).
_METHODS: dict[bytes, str] = {}


def _decode_field(name: bytes, value: bytes) -> tuple[str, str]:
    """A header field as text: UTF-8 with replacement characters, what Go's JSON encoder makes
    of non-UTF-8 header bytes (called only when strict decoding failed: the same result when
    it succeeds, and the cheaper call for the usual ASCII fields)."""
    return name.decode("utf-8", "replace"), value.decode("utf-8", "replace")


class _Side:
    """State shared by the request and response halves: header accumulation and body.

    There is no ``on_message_begin`` callback (one llhttp->Python call per message saved,
    ~750 instructions, callgrind): what it would reset is reset when the message's header
    block ends (``_start_body``) and when the message ends.
    """

    __slots__ = (
        "active",
        "body",
        "conn",
        "encoding",
        "framing",
        "parser",
        "raw",
        "remaining",
        "skip",
        "stream_id",
        "whole",
    )

    # Callbacks we do not take, present as None: httptools looks every callback up with
    # getattr(protocol, name, None) when a parser is made, and a missing attribute costs an
    # AttributeError raised and cleared each time (~1,000 instructions per connection).
    on_message_begin = None
    on_status = None
    on_chunk_header = None
    on_chunk_complete = None

    def __init__(self, conn: Http1Connection) -> None:
        self.conn = conn
        #: Decoded fields as llhttp hands them over: the header section's, then the trailers.
        self.raw: list[tuple[str, str]] = []
        self.body: BodyCollector | None = None  #: created at the first body byte
        #: The body when it came in one piece that fits (see ``on_body``): no collector needed.
        self.whole: Body | None = None
        self.active = False  #: headers complete and the message has not ended yet
        self.encoding = ""
        self.stream_id = 0
        self.framing = "none"  #: "length", "chunked", "close" or "none" once headers are done
        self.remaining = 0  #: body bytes still expected when framing == "length"
        self.skip = 0  #: filler bytes fed for a capture gap, not part of the body

    def on_header(self, name: bytes, value: bytes) -> None:
        # Called for every field of every message (httptools joins a field split across feeds
        # before calling): decode it here, strictly first (exceptions cost nothing until raised).
        # Measured against collecting bytes and decoding the block at once (join, decode,
        # split, zip): per field is ~1,500 instructions/tx cheaper for six short fields.
        try:
            self.raw.append((name.decode(), value.decode()))
        except UnicodeDecodeError:
            self.raw.append(_decode_field(name, value))

    def _take_trailers(self) -> Headers:
        """The message ended: its trailers (usually none), and a clean slate for the next."""
        raw = self.raw
        if not raw:
            return ()
        self.raw = []
        return tuple(raw)

    def _take_body(self) -> Body:
        """The message ended: its body (the one-piece fast path of ``on_body`` or collected)."""
        whole = self.whole
        if whole is not None:
            self.whole = None
            return whole
        body = self.body
        if body is None:
            return EMPTY_BODY
        self.body = None
        return body.finish()

    def on_body(self, data: bytes) -> None:
        if self.framing == "length":
            n = len(data)
            self.remaining = remaining = self.remaining - n
            if not remaining and self.body is None and not self.skip and self.active \
                    and not self.encoding:
                # The whole body in one piece, and the message ends right after this callback
                # (llhttp calls on_message_complete in the same feed): when it fits the body
                # limit and the shared budget, build the Body as is, without a collector
                # (-6,500 instructions per such message, callgrind). It is held for no longer
                # than this feed, so the budget is checked but not charged.
                conn = self.conn
                budget = conn.budget
                if n <= conn.body_limit and n <= budget.limit - budget.used:
                    self.whole = new_body(data, False, n)  # data, truncated, wire_len
                    return
        if not self.active:
            return
        body = self.body
        if body is None:
            body = self.body = BodyCollector(self.conn.body_limit, self.encoding, self.conn.budget)
        if self.skip:
            n = min(self.skip, len(data))
            self.skip -= n
            body.gap(n)
            data = data[n:]
            if not data:
                return
        body.add(data)

    def _start_body(self, headers: Headers, want_host: bool = False) -> str:
        """Body framing and coding from the header section; the first Host when asked for."""
        encoding = host = ""
        self.framing = "close"
        for name, value in headers:
            # Branch on the name's length before lower-casing it: most fields have none of
            # the four lengths, and a Date (4) in a response costs no lower() (~600
            # instructions/tx less than comparing each lowered name with all four, callgrind).
            n = len(name)
            if n not in _SCANNED_NAME_LENGTHS:
                continue
            if n == 4:
                if want_host and name.lower() == "host":
                    host, want_host = value, False
            elif n == 14:
                if name.lower() == "content-length":
                    self.framing = "length"
                    try:
                        self.remaining = int(value)
                    except ValueError:
                        self.remaining = 0
            elif n == 16:
                if name.lower() == "content-encoding":
                    encoding = value
            elif name.lower() == "transfer-encoding" and "chunked" in value.lower():
                self.framing = "chunked"
        self.encoding = encoding
        self.body = None
        self.whole = None
        self.active = True
        return host

    def gap(self, n: int) -> bool:
        """Skip ``n`` lost bytes; False when that is impossible without guessing."""
        if not self.active:
            return False  # between messages or inside a header block
        if self.framing == "close" or (self.framing == "length" and n <= self.remaining):
            self.skip += n
            return True
        return False


class _RequestSide(_Side):
    __slots__ = ("ended", "held", "on_url", "url", "waiting_upgrade")

    def __init__(self, conn: Http1Connection) -> None:
        super().__init__(conn)
        self.url: list[bytes] = []  #: the request-target, in the pieces llhttp hands over
        # llhttp's on_url goes straight to list.append, a C call: no Python frame per request
        # (~550 instructions). The list is cleared, not replaced, so the binding stays valid.
        self.on_url = self.url.append
        self.held = b""
        self.waiting_upgrade = False
        self.ended = False  #: the current request's head said it has no body (``ended``)
        self.parser = httptools.HttpRequestParser(self)

    def on_headers_complete(self) -> None:
        conn = self.conn
        parser = self.parser
        raw_method = parser.get_method()
        method = _METHODS.get(raw_method)
        if method is None:
            method = _METHODS[raw_method] = raw_method.decode("ascii")
        conn.next_request = sid = conn.next_request + 1
        self.stream_id = sid
        headers = tuple(self.raw)  # the header section; fields from now on are trailers
        self.raw = []
        authority = self._start_body(headers, True)
        conn.pending.append(method)
        if method in _HEADLESS_BODY:
            conn.headless += 1
        url = self.url
        if len(url) == 1:
            raw_target = url.pop()  # the usual one piece: taken and cleared in one C call
        else:
            raw_target = b"".join(url)
            url.clear()
        try:
            target = raw_target.decode()  # llhttp takes only ASCII in the target; strict
            # decoding without arguments is the cheaper call (~300 instructions)
        except UnicodeDecodeError:
            target = raw_target.decode("utf-8", "replace")
        framing = self.framing
        if framing == "close":
            framing = self.framing = "none"  # a request without length has no body
            # (RFC 9112 §6.3 p6)
        # No body: llhttp ends the message right after this callback; the head says so and no
        # RequestEnd follows (RequestHead.ended).
        self.ended = ended = framing == "none" or (framing == "length" and not self.remaining)
        # RequestHead fields in order: stream_id, method, target, version, authority, scheme,
        # headers, grpc, ended (positional: see events.py on the new_* constructors)
        conn.events.append(new_request_head(
            sid, method, target, parser.get_http_version(), authority, "", headers, False,
            ended))

    def on_message_complete(self) -> None:
        self.active = False
        if self.ended:
            return  # the RequestHead said so already
        self.conn.events.append(new_request_end(  # stream_id, body, trailers
            self.stream_id, self._take_body(), self._take_trailers()))

    def feed(self, data: bytes) -> None:
        if self.waiting_upgrade:
            if len(self.held) + len(data) > MAX_HELD:
                self.conn.desync("request bytes after Upgrade/CONNECT exceed the hold limit")
                return
            self.held += data
            return
        try:
            self.parser.feed_data(data)
        except _STOPS as exc:
            self.stopped(data, exc)

    def stopped(self, data: bytes, exc: Exception) -> None:
        """llhttp stopped inside ``data``: an Upgrade/CONNECT request, or an error."""
        if isinstance(exc, httptools.HttpParserUpgrade):
            # CONNECT or an Upgrade request: wait for the answer before parsing further.
            self.waiting_upgrade = True
            self.held = data[int(exc.args[0]):]
        else:
            self.conn.desync(f"request: {exc}")

    def refused(self) -> None:
        """The server refused the Upgrade/CONNECT: what the client sent next is HTTP again."""
        self.waiting_upgrade = False
        held, self.held = self.held, b""
        self.parser = httptools.HttpRequestParser(self)
        self.url.clear()
        if held:
            self.feed(held)


class _ResponseSide(_Side):
    __slots__ = ("at_boundary", "hbuf", "head_only", "informational")

    def __init__(self, conn: Http1Connection) -> None:
        super().__init__(conn)
        self.hbuf = b""
        self.head_only = False
        self.informational = False
        #: No response is past its header block and unfinished (llhttp is between messages
        #: or inside a header block): where the answer to a HEAD/CONNECT may be cut.
        self.at_boundary = True
        self.parser = httptools.HttpResponseParser(self)

    def on_headers_complete(self) -> None:
        parser = self.parser
        status = parser.get_status_code()
        headers = tuple(self.raw)  # the header section; fields from now on are trailers
        self.raw = []
        self.at_boundary = False
        if status < 200:
            self.informational = status >= 100 and status != 101
            if self.informational:
                return  # 1xx precede the real response (RFC 9110 §15.2); llhttp frames them
        else:
            self.informational = False
        conn = self.conn
        pending = conn.pending
        if not pending:
            # No request to pair with: never guess which one this answers.
            conn.desync("response without a request (capture started mid-connection)")
            self.active = False
            return
        method = pending.popleft()
        if method in _HEADLESS_BODY or status == 101 or self.head_only \
                or conn.request.waiting_upgrade:
            self._unusual_head(conn, method, status, headers)
            return
        # The usual response: the checks of _unusual_head skipped (~30 bytecodes; with the
        # request target's pop, ~800 instructions/tx, callgrind).
        conn.next_response = sid = conn.next_response + 1
        self.stream_id = sid
        conn.events.append(new_response_head(  # stream_id, status, version, headers
            sid, status, parser.get_http_version(), headers))
        self._start_body(headers)

    def _unusual_head(self, conn: Http1Connection, method: str, status: int,
                      headers: Headers) -> None:
        """The rest of on_headers_complete for an answer to HEAD or CONNECT, a 101, a header
        block cut by ``_cut_head``, or while an Upgrade/CONNECT request waits for its answer."""
        if method in _HEADLESS_BODY:
            conn.headless -= 1
        conn.next_response += 1
        self.stream_id = conn.next_response
        if status == 101 and any(n.lower() == "upgrade" and v.strip().lower() == "h2c"
                                 for n, v in headers):
            # RFC 7540 §3.2: the answer to this request comes as HTTP/2 stream 1; the caller
            # switches parsers (Http2Connection.upgraded) with the bytes after this block.
            self.active = False
            self.at_boundary = True
            conn.tunnel(self.stream_id, "h2c")
            return
        conn.events.append(new_response_head(  # stream_id, status, version, headers
            self.stream_id, status, self.parser.get_http_version(), headers))
        self._start_body(headers)
        tunnel = status == 101 or (method == "CONNECT" and 200 <= status < 300)
        if self.head_only or tunnel or method in _HEADLESS_BODY:
            self.framing = "none"
            self.at_boundary = True
            self.active = False
            conn.events.append(new_response_end(self.stream_id, EMPTY_BODY))
            if tunnel:
                conn.tunnel(self.stream_id, "101 Switching Protocols" if status == 101
                            else "CONNECT")
        if not tunnel and conn.request.waiting_upgrade and not conn.pending:
            conn.request.refused()  # the Upgrade/CONNECT was answered with a plain response

    def on_message_complete(self) -> None:
        self.at_boundary = True
        if self.informational or not self.active:
            self.raw = []  # a 1xx has no trailers; a message we do not report keeps none
            return
        self.active = False
        # _take_body and _take_trailers for the usual case (a one-piece body, no trailers),
        # inlined: two Python calls less per response.
        body = self.whole
        if body is None:
            body = self._take_body()
        else:
            self.whole = None
        trailers = self._take_trailers() if self.raw else ()
        self.conn.events.append(new_response_end(  # stream_id, body, trailers
            self.stream_id, body, trailers))
        self.framing = "none"

    def _feed_parser(self, data: bytes) -> bool:
        try:
            self.parser.feed_data(data)
        except _STOPS as exc:
            return self.stopped(data, exc)
        return True

    def stopped(self, data: bytes, exc: Exception) -> bool:
        """llhttp stopped inside ``data``: after a 101 (True), or an error (False)."""
        if isinstance(exc, httptools.HttpParserUpgrade):
            # 101: on_headers_complete already made the connection a tunnel; keep what follows
            # the header block for a protocol that takes over (h2c).
            self.conn.after_upgrade = data[int(exc.args[0]):]
            return True
        self.conn.desync(f"response: {exc}")
        return False

    def _cut_head(self, data: bytes) -> bytes | None:
        """Parse one header block on its own (response to HEAD/CONNECT); return what follows."""
        self.hbuf += data
        end = self.hbuf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.hbuf) > MAX_HEADER_BLOCK:
                self.conn.desync("response header block too large")
            return None
        block, rest = self.hbuf[:end + 4], self.hbuf[end + 4:]
        self.hbuf = b""
        self.head_only = True
        self.parser = httptools.HttpResponseParser(self)
        ok = self._feed_parser(block)
        self.head_only = False
        self.at_boundary = True
        self.parser = httptools.HttpResponseParser(self)
        return rest if ok else None

    def feed(self, data: bytes) -> None:
        conn = self.conn
        if not conn.headless:
            if data:  # no HEAD/CONNECT awaits its answer: llhttp frames everything
                self._feed_parser(data)
            return
        while data and conn.state == "http":
            pending = conn.pending
            if self.at_boundary and pending and pending[0] in _HEADLESS_BODY:
                rest = self._cut_head(data)
                if rest is None:
                    return
                data = rest
            elif ((len(pending) > 1 or not self.at_boundary)
                  and not _HEADLESS_BODY.isdisjoint(pending)):
                # A HEAD/CONNECT is queued behind this response (past its header block, the
                # response's own request has left ``pending``): feed up to the message end
                # only, so its answer is parsed by the code above (rare, so byte by byte).
                i = 0
                started = not self.at_boundary
                while i < len(data) and conn.state == "http":
                    if not self._feed_parser(data[i:i + 1]):
                        return
                    i += 1
                    if not self.at_boundary:
                        started = True
                    elif started:
                        break
                data = data[i:]
            else:
                self._feed_parser(data)
                return

    def end(self) -> None:
        """The connection closed: a close-delimited body ends here (RFC 9112 §6.3 p8)."""
        if not self.active:
            return  # between messages or inside a header block: nothing to finish
        complete = self.framing == "close"
        body = self.body or BodyCollector(self.conn.body_limit, self.encoding, self.conn.budget)
        self.conn.events.append(new_response_end(
            self.stream_id, body.finish(complete), self._take_trailers()))
        self.at_boundary = True
        self.active = False
        self.body = None


class Http1Connection:
    """Both directions of one HTTP/1.x connection. Feed client and server bytes separately."""

    protocol = "http1"

    def __init__(self, body_limit: int, budget: Budget = UNLIMITED) -> None:
        self.body_limit = body_limit
        self.budget = budget
        self.events: list[ProtocolEvent] = []
        self.pending: deque[str] = deque()  #: methods of requests not yet answered
        self.headless = 0  #: how many of them are HEAD or CONNECT (their answers are cut here)
        self.next_request = 0
        self.next_response = 0
        self.state = "http"  #: "http", "tunnel" or "desync"
        self.tunnel_reason = ""
        self.after_upgrade = b""  #: server bytes after a 101's header block
        self.request = _RequestSide(self)
        self.response = _ResponseSide(self)

    def desync(self, reason: str) -> None:
        if self.state == "http":
            self.state = "desync"
            self.events.append(Desync(reason=reason))

    def tunnel(self, stream_id: int, reason: str) -> None:
        self.state = "tunnel"
        self.tunnel_reason = reason
        self.events.append(Tunnel(stream_id=stream_id, reason=reason))

    def _take(self) -> list[ProtocolEvent]:
        events = self.events
        if not events:
            return []  # never hand out the live list
        self.events = []
        return events

    def feed_client(self, data: bytes) -> list[ProtocolEvent]:
        """Bytes the client sent (requests)."""
        if self.state == "http":
            request = self.request
            if request.waiting_upgrade:
                request.feed(data)
            else:
                # _RequestSide.feed, inlined (one Python call less per data event)
                try:
                    request.parser.feed_data(data)
                except _STOPS as exc:
                    request.stopped(data, exc)
        events = self.events  # _take, inlined: this runs for every data event
        if not events:
            return []
        self.events = []
        return events

    def feed_server(self, data: bytes) -> list[ProtocolEvent]:
        """Bytes the server sent (responses)."""
        if self.state == "http":
            response = self.response
            if not self.headless and data:
                # No HEAD/CONNECT awaits its answer: llhttp frames everything (the common
                # case of _ResponseSide.feed and _feed_parser, inlined: two calls less).
                try:
                    response.parser.feed_data(data)
                except _STOPS as exc:
                    response.stopped(data, exc)
            else:
                response.feed(data)
        events = self.events
        if not events:
            return []
        self.events = []
        return events

    def gap_client(self, n: int) -> list[ProtocolEvent]:
        """``n`` client bytes were lost by the capture."""
        if self.state == "http" and not self.request.waiting_upgrade:
            if self.request.gap(n):
                self.request.feed(b"\0" * n)
            else:
                self.desync(f"{n} request bytes lost outside a body")
        return self._take()

    def gap_server(self, n: int) -> list[ProtocolEvent]:
        """``n`` server bytes were lost by the capture."""
        if self.state == "http":
            if self.response.gap(n):
                self.response.feed(b"\0" * n)
            else:
                self.desync(f"{n} response bytes lost outside a body")
        return self._take()

    def close(self) -> list[ProtocolEvent]:
        """The connection ended: finish a close-delimited response."""
        if self.state == "http":
            self.response.end()
        return self._take()

    def upgraded_bytes(self) -> tuple[bytes, bytes]:
        """(client, server) bytes already seen after a 101: the new protocol's first bytes."""
        return self.request.held, self.after_upgrade

    def discard(self) -> None:
        """Give back the memory of bodies still being collected (the connection is gone)."""
        for side in (self.request, self.response):
            if side.body is not None:
                side.body.release()
                side.body = None


__all__ = ["Headers", "Http1Connection"]
