"""What the protocol parsers hand the assembler: one frozen event per protocol fact.

Every parser in this package is sans-I/O: ``feed(direction, data)`` returns a list of these.
Stream ids pair requests with responses: HTTP/2 uses its own stream ids; HTTP/1 numbers the
requests and the (final, non-1xx) responses of a connection 1, 2, 3, ... in order, so the n-th
response answers the n-th request (RFC 9112 §9.3: responses come in request order).
"""

from __future__ import annotations

from dataclasses import dataclass

from qtap_fluent.records import fast_new, quick_init

Headers = tuple[tuple[str, str], ...]
"""Header fields in wire order, names as sent (HTTP/2: lower case), UTF-8 decoded with
replacement characters for invalid bytes."""


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class Body:
    """A message body after de-chunking and content decoding, capped at the body limit.

    ``truncated`` is True when bytes are missing: over the limit, lost by the capture (a gap),
    or the message ended early. ``wire_len`` counts the payload bytes seen before decoding.
    """

    data: bytes
    truncated: bool
    wire_len: int
    decode_error: str | None = None


EMPTY_BODY = Body(data=b"", truncated=False, wire_len=0)


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class RequestHead:
    """A request's header block is complete (the duration clock starts here).

    ``ended``: the request ended with its header block (no body, so no trailers either) and
    no ``RequestEnd`` follows; it stands for ``RequestEnd(body=EMPTY_BODY)``. HTTP/1 sets it
    for the usual body-less request (an event object and a pairing step less: ~4,900
    instructions per such request, callgrind); a parser may always send the ``RequestEnd``.
    """

    stream_id: int
    method: str
    target: str  #: request-target as sent, or HTTP/2 ``:path``
    version: str  #: "1.0", "1.1" or "2"
    authority: str  #: Host header or ``:authority`` ("" when absent)
    scheme: str  #: HTTP/2 ``:scheme``; "" for HTTP/1 (the connection decides)
    headers: Headers
    grpc: bool = False
    ended: bool = False


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseHead:
    """A final (non-1xx) response's header block is complete (the duration clock stops)."""

    stream_id: int
    status: int
    version: str
    headers: Headers
    grpc: bool = False


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class RequestEnd:
    """The request is complete: body and trailers."""

    stream_id: int
    body: Body
    trailers: Headers = ()
    wire_bytes: int = 0  #: HTTP/2: frame bytes of this stream's request; 0 = not counted


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseEnd:
    """The response is complete: body and trailers (gRPC status lives in trailers)."""

    stream_id: int
    body: Body
    trailers: Headers = ()
    wire_bytes: int = 0  #: HTTP/2: frame bytes of this stream's response; 0 = not counted


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class StreamReset:
    """An HTTP/2 stream was reset (RFC 9113 §6.4) before it finished."""

    stream_id: int
    error_code: int
    request_wire_bytes: int = 0
    response_wire_bytes: int = 0


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class Tunnel:
    """CONNECT succeeded or the protocol was upgraded (101): the rest is not HTTP we parse."""

    stream_id: int
    reason: str


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class Desync:
    """The parser lost framing (capture started mid-stream, bytes lost, garbage): it stops.

    Nothing after this is guessed; open streams end as incomplete.
    """

    reason: str


ProtocolEvent = (
    RequestHead | ResponseHead | RequestEnd | ResponseEnd | StreamReset | Tunnel | Desync
)

# Constructors for the hot path (``records.fast_new``): the same objects, built from positional
# arguments in field order, several times cheaper than ``Class(field=...)`` in CPython 3.11.
# The parsers make four or five of these per transaction; elsewhere use the classes.
new_body = fast_new(Body)
new_request_head = fast_new(RequestHead)
new_response_head = fast_new(ResponseHead)
new_request_end = fast_new(RequestEnd)
new_response_end = fast_new(ResponseEnd)
