"""HTTP/2, sans-I/O: hyperframe splits frames, one hpack Decoder per direction decodes headers.

h2's connection object cannot watch a connection it is not part of, so we keep only what an
observer needs (RFC 9113): per-direction frame reassembly, header blocks across CONTINUATION
(§6.10), padding (hyperframe strips it, §6.1), RST_STREAM (§6.4), trailers (§8.1), the
SETTINGS_HEADER_TABLE_SIZE each side grants the other's encoder (§6.5.2), gRPC marked by its
content-type. The HPACK dynamic table lives as long as the connection (RFC 7541 §2.3.2), so a
capture that starts mid-connection, or loses bytes of a header block, cannot decode anything
that follows: the connection is marked desynchronised, nothing is guessed.
"""

from __future__ import annotations

import hpack
import hyperframe.exceptions
import hyperframe.frame as hf

from qtap_fluent.agent.protocols.body import UNLIMITED, BodyCollector, Budget
from qtap_fluent.agent.protocols.events import (
    EMPTY_BODY,
    Desync,
    Headers,
    ProtocolEvent,
    StreamReset,
    new_request_end,
    new_request_head,
    new_response_end,
    new_response_head,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  #: RFC 9113 §3.4
_FRAME_HEADER = 9
#: Largest frame we buffer: the protocol maximum SETTINGS_MAX_FRAME_SIZE (RFC 9113 §4.2).
MAX_FRAME = (1 << 24) - 1
#: Largest header block assembled from HEADERS + CONTINUATION before we give up.
MAX_HEADER_BLOCK = 256 * 1024
#: Open streams tracked per connection; more is a flood and desynchronises us.
MAX_STREAMS = 1000


class _Stream:
    __slots__ = (
        "req_body",
        "req_done",
        "req_wire",
        "request_seen",
        "res_body",
        "res_done",
        "res_wire",
        "response_seen",
    )

    def __init__(self) -> None:
        self.request_seen = False
        self.response_seen = False
        self.req_body: BodyCollector | None = None
        self.res_body: BodyCollector | None = None
        self.req_done = False
        self.res_done = False
        self.req_wire = 0  #: frame bytes (header + payload) the client sent on this stream
        self.res_wire = 0


def _encoding(headers: Headers) -> str:
    for name, value in headers:
        if name == "content-encoding":
            return value
    return ""


def _is_grpc(headers: Headers) -> bool:
    for name, value in headers:
        if name == "content-type":
            return value.startswith("application/grpc")
    return False


class _Direction:
    """Frame reassembly and HPACK state for the bytes one endpoint sends."""

    __slots__ = (
        "block",
        "block_end_stream",
        "block_promised",
        "block_stream",
        "block_wire",
        "buf",
        "client",
        "decoder",
        "frame_gap",
        "need_preface",
    )

    def __init__(self, client: bool) -> None:
        self.client = client
        self.buf = bytearray()
        self.need_preface = client
        self.decoder = hpack.Decoder()
        self.block: bytearray | None = None  #: header block awaiting CONTINUATION
        self.block_stream = 0
        self.block_end_stream = False
        self.block_promised = 0
        self.frame_gap = 0  #: lost bytes inside the DATA frame at the head of ``buf``
        self.block_wire = 0  #: frame bytes of the header block being assembled


class Http2Connection:
    """Both directions of one HTTP/2 connection (prior knowledge or after the preface)."""

    protocol = "http2"

    def __init__(self, body_limit: int, budget: Budget = UNLIMITED) -> None:
        self.body_limit = body_limit
        self.budget = budget
        self.tunnel_reason = ""
        self.events: list[ProtocolEvent] = []
        self.streams: dict[int, _Stream] = {}
        self.state = "http"
        self.grpc = False
        self._opening_bytes = 0
        self._client = _Direction(client=True)
        self._server = _Direction(client=False)

    @classmethod
    def upgraded(cls, body_limit: int, budget: Budget = UNLIMITED) -> Http2Connection:
        """After ``Upgrade: h2c`` + 101 (RFC 7540 §3.2): the HTTP/1.1 request became stream 1,
        half-closed by the client; its response arrives as HTTP/2 frames."""
        conn = cls(body_limit, budget)
        stream = conn.streams[1] = _Stream()
        stream.request_seen = stream.req_done = True
        return conn

    # -- public, sans-I/O ------------------------------------------------------------------

    def feed_client(self, data: bytes) -> list[ProtocolEvent]:
        """Bytes the client sent."""
        return self._feed(self._client, data)

    def feed_server(self, data: bytes) -> list[ProtocolEvent]:
        """Bytes the server sent."""
        return self._feed(self._server, data)

    def gap_client(self, n: int) -> list[ProtocolEvent]:
        """``n`` client bytes were lost by the capture."""
        return self._gap(self._client, n)

    def gap_server(self, n: int) -> list[ProtocolEvent]:
        """``n`` server bytes were lost by the capture."""
        return self._gap(self._server, n)

    def close(self) -> list[ProtocolEvent]:
        """The connection ended; streams still open are left to the assembler (499)."""
        return self._take()

    def discard(self) -> None:
        """Give back the memory of bodies still being collected (the connection is gone)."""
        for stream in self.streams.values():
            for body in (stream.req_body, stream.res_body):
                if body is not None:
                    body.release()
        self.streams.clear()

    # -- internals ---------------------------------------------------------------------------

    def _take(self) -> list[ProtocolEvent]:
        events = self.events
        if not events:
            return []  # never hand out the live list
        self.events = []
        return events

    def desync(self, reason: str) -> None:
        if self.state == "http":
            self.state = "desync"
            self.events.append(Desync(reason=reason))

    def _gap(self, side: _Direction, n: int) -> list[ProtocolEvent]:
        if self.state != "http":
            return self._take()
        buf = side.buf
        # Only a loss inside one DATA frame's payload can be stepped over: the frame header
        # told us its length, and DATA carries no compression state.
        if len(buf) >= _FRAME_HEADER and buf[3] == 0x0 and not side.need_preface:
            length = int.from_bytes(buf[0:3], "big")
            if len(buf) + n <= _FRAME_HEADER + length:
                side.frame_gap += n
                buf.extend(b"\0" * n)
                self._drain(side)
                return self._take()
        self.desync(f"{n} bytes lost outside a DATA payload")
        return self._take()

    def _feed(self, side: _Direction, data: bytes) -> list[ProtocolEvent]:
        if self.state != "http":
            return self._take()
        side.buf += data
        if side.need_preface:
            if len(side.buf) < len(PREFACE):
                if not PREFACE.startswith(bytes(side.buf)):
                    self.desync("client did not start with the HTTP/2 preface")
                return self._take()
            if not side.buf.startswith(PREFACE):
                self.desync("client did not start with the HTTP/2 preface")
                return self._take()
            del side.buf[:len(PREFACE)]
            side.need_preface = False
        self._drain(side)
        return self._take()

    def _drain(self, side: _Direction) -> None:
        buf = side.buf
        pos = 0
        while self.state == "http" and len(buf) - pos >= _FRAME_HEADER:
            length = int.from_bytes(buf[pos:pos + 3], "big")
            end = pos + _FRAME_HEADER + length
            if len(buf) < end:
                break
            view = memoryview(buf)
            try:
                frame, _ = hf.Frame.parse_frame_header(view[pos:pos + _FRAME_HEADER])
                frame.parse_body(view[pos + _FRAME_HEADER:end])
            except (hyperframe.exceptions.HyperframeError, ValueError) as exc:
                view.release()
                self.desync(f"bad frame: {exc}")
                break
            view.release()
            pos = end
            gap, side.frame_gap = side.frame_gap, 0
            if frame.stream_id:
                if isinstance(frame, (hf.HeadersFrame, hf.PushPromiseFrame)):
                    side.block_wire = 0
                stream = self.streams.get(frame.stream_id)
                if stream is not None and not (side.client and not stream.request_seen):
                    if side.client:
                        stream.req_wire += _FRAME_HEADER + length
                    else:
                        stream.res_wire += _FRAME_HEADER + length
                elif isinstance(frame, (hf.HeadersFrame, hf.ContinuationFrame)):
                    side.block_wire += _FRAME_HEADER + length  # opens a stream: counted below
            self._frame(side, frame, length, gap)
        if pos:
            del buf[:pos]

    def _frame(self, side: _Direction, frame: hf.Frame, length: int, gap: int) -> None:
        if side.block is not None and not isinstance(frame, hf.ContinuationFrame):
            self.desync("header block interrupted before END_HEADERS (RFC 9113 §6.10)")
            return
        if isinstance(frame, hf.DataFrame):
            self._data(side, frame, gap)
        elif isinstance(frame, (hf.HeadersFrame, hf.PushPromiseFrame, hf.ContinuationFrame)):
            self._header_fragment(side, frame)
        elif isinstance(frame, hf.RstStreamFrame):
            stream = self.streams.pop(frame.stream_id, None)
            if stream is not None:
                for body in (stream.req_body, stream.res_body):
                    if body is not None:
                        body.release()
                self.events.append(StreamReset(
                    stream_id=frame.stream_id, error_code=frame.error_code,
                    request_wire_bytes=stream.req_wire, response_wire_bytes=stream.res_wire))
        elif isinstance(frame, hf.SettingsFrame) and "ACK" not in frame.flags:
            size = frame.settings.get(hf.SettingsFrame.HEADER_TABLE_SIZE)
            if size is not None:
                # This endpoint lets the *other* side's encoder use a table this large.
                other = self._server if side.client else self._client
                other.decoder.max_allowed_table_size = size

    def _header_fragment(self, side: _Direction,
                         frame: hf.HeadersFrame | hf.PushPromiseFrame | hf.ContinuationFrame
                         ) -> None:
        if isinstance(frame, hf.ContinuationFrame):
            if side.block is None or frame.stream_id != side.block_stream:
                self.desync("CONTINUATION without an open header block")
                return
            side.block += frame.data
        else:
            side.block = bytearray(frame.data)
            side.block_stream = frame.stream_id
            side.block_end_stream = "END_STREAM" in frame.flags
            side.block_promised = (frame.promised_stream_id
                                   if isinstance(frame, hf.PushPromiseFrame) else 0)
        if len(side.block) > MAX_HEADER_BLOCK:
            self.desync("header block too large")
            return
        if "END_HEADERS" in frame.flags:
            block, side.block = bytes(side.block), None
            try:
                decoded = side.decoder.decode(block, raw=True)
            except hpack.HPACKError as exc:
                self.desync(f"HPACK: {exc}")
                return
            # Raw, then UTF-8 with replacement: a non-UTF-8 value is not a reason to stop
            # (Go's JSON encoder writes such bytes as U+FFFD too).
            headers: Headers = tuple((bytes(n).decode("utf-8", "replace"),
                                      bytes(v).decode("utf-8", "replace")) for n, v in decoded)
            self._opening_bytes = side.block_wire
            if side.block_promised:
                self._request(side.block_promised, headers, end_stream=True)
            elif side.client:
                self._request(side.block_stream, headers, side.block_end_stream)
            else:
                self._response(side.block_stream, headers, side.block_end_stream)

    def _request(self, sid: int, headers: Headers, end_stream: bool) -> None:
        stream = self.streams.get(sid)
        if stream is not None and stream.request_seen:
            if end_stream:  # trailers (RFC 9113 §8.1)
                self._end_request(sid, stream, headers)
            return
        if stream is None:
            if len(self.streams) >= MAX_STREAMS:
                self.desync("too many open streams")
                return
            stream = self.streams[sid] = _Stream()
            stream.req_wire = self._opening_bytes
        stream.request_seen = True
        pseudo = dict(h for h in headers if h[0].startswith(":"))
        grpc = _is_grpc(headers)
        self.grpc = self.grpc or grpc
        # RequestHead fields in order (positional, see events.py): stream_id, method, target,
        # version, authority, scheme, headers, grpc
        self.events.append(new_request_head(
            sid, pseudo.get(":method", ""), pseudo.get(":path", ""), "2",
            pseudo.get(":authority", ""), pseudo.get(":scheme", ""), headers, grpc))
        if end_stream:
            self._end_request(sid, stream, ())  # no body: no collector (~5,000 instructions)
        else:
            stream.req_body = BodyCollector(self.body_limit, _encoding(headers), self.budget)

    def _response(self, sid: int, headers: Headers, end_stream: bool) -> None:
        stream = self.streams.get(sid)
        if stream is None:
            return  # a stream we never saw open (e.g. reset): nothing to pair it with
        if stream.response_seen:
            if end_stream:
                self._end_response(sid, stream, headers)
            return
        status_text = next((v for n, v in headers if n == ":status"), "")
        status = int(status_text) if status_text.isdigit() else 0
        if 100 <= status < 200:
            return  # informational (RFC 9113 §8.1): the final response follows
        stream.response_seen = True
        grpc = _is_grpc(headers)
        # stream_id, status, version, headers, grpc
        self.events.append(new_response_head(sid, status, "2", headers, grpc))
        if end_stream:
            self._end_response(sid, stream, ())  # no body: no collector
        else:
            stream.res_body = BodyCollector(self.body_limit, _encoding(headers), self.budget)

    def _data(self, side: _Direction, frame: hf.DataFrame, gap: int) -> None:
        stream = self.streams.get(frame.stream_id)
        if stream is None:
            return
        body = stream.req_body if side.client else stream.res_body
        if body is not None:
            if gap:
                body.gap(len(frame.data))  # where inside the frame is not worth tracking
            elif frame.data:
                body.add(bytes(frame.data))
        if "END_STREAM" in frame.flags:
            if side.client:
                self._end_request(frame.stream_id, stream, ())
            else:
                self._end_response(frame.stream_id, stream, ())

    def _end_request(self, sid: int, stream: _Stream, trailers: Headers) -> None:
        if stream.req_done:
            return
        stream.req_done = True
        body = stream.req_body.finish() if stream.req_body else None
        stream.req_body = None
        # stream_id, body, trailers, wire_bytes
        self.events.append(new_request_end(sid, body or EMPTY_BODY, trailers, stream.req_wire))

    def _end_response(self, sid: int, stream: _Stream, trailers: Headers) -> None:
        stream.res_done = True
        body = stream.res_body.finish() if stream.res_body else None
        stream.res_body = None
        self.events.append(new_response_end(sid, body or EMPTY_BODY, trailers, stream.res_wire))
        self.streams.pop(sid, None)
