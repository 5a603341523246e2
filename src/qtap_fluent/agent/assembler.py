"""Pairs requests with responses into exchanges: timing, bytes, direction, endpoint.

Pure: protocol events come in with the timestamp of the data that produced them. One
``Pairing`` per connection; streams pair by id (HTTP/2 stream ids, HTTP/1 sequence numbers).
A request whose response never comes (close, idle eviction, reset, desync) ends with Qtap's
status 499 (qtap.md §3.1).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qtap_fluent.agent.events import Address
from qtap_fluent.agent.protocols.events import (
    EMPTY_BODY,
    Body,
    Desync,
    Headers,
    ProtocolEvent,
    RequestEnd,
    RequestHead,
    ResponseEnd,
    ResponseHead,
    StreamReset,
    Tunnel,
)
from qtap_fluent.records import fast_new

if TYPE_CHECKING:
    from qtap_fluent.agent.tracker import Connection

#: Qtap's status for a request that got no response (qtap.md §3.1).
STATUS_NO_RESPONSE = 499

INGRESS = "ingress"
EGRESS_INTERNAL = "egress-internal"
EGRESS_EXTERNAL = "egress-external"

# Go's net.IP.IsPrivate: RFC 1918 and RFC 4193 only. Loopback and link-local are *external*
# for the record's direction (qtap.md §4.1), unlike Python's ipaddress.is_private.
_PRIVATE = tuple(ipaddress.ip_network(n) for n in
                 ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))


#: Answers of ``is_private`` by address text, bounded: hosts talk to the same few peers, and
#: parsing an address with ``ipaddress`` costs ~40,000 instructions, once per connection.
_private_cache: dict[str, bool] = {}
_PRIVATE_CACHE_SIZE = 4096


def is_private(ip: str) -> bool:
    """Go ``net.IP.IsPrivate`` (IPv4-mapped IPv6 addresses count as their IPv4)."""
    known = _private_cache.get(ip)
    if known is not None:
        return known
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    private = any(addr.version == net.version and addr in net for net in _PRIVATE)
    if len(_private_cache) < _PRIVATE_CACHE_SIZE:
        _private_cache[ip] = private
    return private


def direction_of(client: bool, remote: Address | None) -> str:
    """qtap.md §4.1: accept() => ingress; connect() => egress-internal iff the peer is private."""
    if not client:
        return INGRESS
    return EGRESS_INTERNAL if remote is not None and is_private(remote.ip) else EGRESS_EXTERNAL


@dataclass(slots=True, kw_only=True)
class Exchange:
    """One request and its response (or the lack of one), with the connection's facts.

    Read-only by convention, not ``frozen``: one is built per transaction on the hot path and
    a frozen dataclass of this width costs several microseconds more to construct.
    """

    conn_id: int
    connection_id: str
    request_id: str
    pid: int
    exe: str
    container_id: str
    local: Address | None
    remote: Address | None
    client: bool  #: the observed process is the client (egress) rather than the server
    direction: str
    tls: bool
    sni: str
    protocol: str  #: "http1", "http2" or "grpc"
    request: RequestHead
    request_body: Body | None
    request_trailers: Headers
    response: ResponseHead | None
    response_body: Body | None
    response_trailers: Headers
    status: int
    request_ts_ns: int
    response_ts_ns: int
    end_ts_ns: int
    bytes_sent: int
    bytes_received: int
    reset_code: int | None = None

    @property
    def complete(self) -> bool:
        return self.response is not None


#: An open request is a list indexed by these: a list display costs ~1,100 instructions less
#: per request than building a slotted object (type call, ``__init__`` frame; callgrind).
#: head (RequestHead), request ts, body (Body | None until the request ended), trailers,
#: response (ResponseHead | None), response ts, reset code (int | None), request and response
#: wire bytes (HTTP/2 frames).
_HEAD, _TS, _BODY, _TRAILERS, _RESPONSE, _RESPONSE_TS, _RESET, _REQ_WIRE, _RES_WIRE = range(9)
OpenRequest = list[Any]


class Pairing:
    """The assembler state of one connection."""

    __slots__ = ("conn", "mark_in", "mark_out", "open", "unpaired")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.open: dict[int, OpenRequest] = {}
        self.unpaired = 0  #: responses that matched no request (counted, dropped)
        self.mark_out = 0
        self.mark_in = 0

    def apply(self, events: list[ProtocolEvent], ts: int) -> list[Exchange]:
        """Fold protocol events seen at ``ts`` in; return the exchanges they completed."""
        done: list[Exchange] = []
        # Any: the branches below test ``type(ev)`` once, which mypy does not narrow through.
        evs: list[Any] = events
        for ev in evs:
            kind = type(ev)
            # The events of every exchange are handled here, the rarer ones by the table
            # (_HANDLERS): a Python call less per event, ~1,800 instructions/tx (callgrind).
            if kind is RequestHead:
                # A new open request, in the order of ``_HEAD`` ... ``_RES_WIRE``; ``ended``
                # stands for a RequestEnd without body, so the body is known already.
                self.open[ev.stream_id] = [ev, ts, EMPTY_BODY if ev.ended else None, (), None,
                                           0, None, 0, 0]
            elif kind is ResponseHead:
                o = self.open.get(ev.stream_id)
                if o is None:
                    self.unpaired += 1  # never guess which request it answers
                else:
                    o[_RESPONSE] = ev
                    o[_RESPONSE_TS] = ts
            elif kind is ResponseEnd:
                o = self.open.pop(ev.stream_id, None)
                if o is not None and o[_RESPONSE] is not None:
                    o[_RES_WIRE] = ev.wire_bytes
                    done.append(self._exchange(o, ev.body, ev.trailers, ts))
            else:
                _HANDLERS[kind](self, ev, ts, done)
        return done

    def upgraded(self, sid: int) -> None:
        """h2c (RFC 7540 §3.2): the HTTP/1 request ``sid`` goes on as HTTP/2 stream 1. It went
        as HTTP/1, so its wire bytes are what the client sent since the previous exchange."""
        o = self.open.pop(sid, None)
        if o is not None:
            self.open[1] = o
            conn = self.conn
            o[_REQ_WIRE] = (conn.bytes_out - self.mark_out) if conn.client else (
                conn.bytes_in - self.mark_in)

    def _request_end(self, ev: RequestEnd, ts: int, done: list[Exchange]) -> None:
        o = self.open.get(ev.stream_id)
        if o is not None:
            o[_BODY] = ev.body
            o[_TRAILERS] = ev.trailers
            o[_REQ_WIRE] = ev.wire_bytes

    def _reset(self, ev: StreamReset, ts: int, done: list[Exchange]) -> None:
        o = self.open.pop(ev.stream_id, None)
        if o is not None:
            o[_RESET] = ev.error_code
            o[_REQ_WIRE] = ev.request_wire_bytes or o[_REQ_WIRE]
            o[_RES_WIRE] = ev.response_wire_bytes
            done.append(self._exchange(o, None, (), ts))

    def _ignore(self, ev: ProtocolEvent, ts: int, done: list[Exchange]) -> None:
        pass  # Desync/Tunnel: the tracker records the state; open streams end at finish()

    def finish(self, ts: int) -> list[Exchange]:
        """The connection is gone: every open request ends now (499 when unanswered)."""
        done = [self._exchange(o, None, (), ts) for o in self.open.values()]
        self.open.clear()
        return done

    def _exchange(self, o: OpenRequest, body: Body | None, trailers: Headers,
                  ts: int) -> Exchange:
        conn = self.conn
        head, req_ts, req_body, req_trailers, response, res_ts, reset, req_wire, res_wire = o
        protocol = conn.protocol
        if protocol == "http2":
            # HTTP/2 counts each stream's own frames (streams interleave on the wire).
            sent, received = (req_wire, res_wire) if conn.client else (res_wire, req_wire)
        else:
            # HTTP/1 messages follow each other: the bytes since the previous exchange.
            out, in_ = conn.bytes_out, conn.bytes_in
            sent, received = out - self.mark_out, in_ - self.mark_in
            self.mark_out, self.mark_in = out, in_
        if response is None:
            status = STATUS_NO_RESPONSE
            grpc = head.grpc
        else:
            status = response.status
            if body is None:
                body = Body(data=b"", truncated=True, wire_len=0)  # ended before the body did
            grpc = head.grpc or response.grpc
        if grpc:
            protocol = "grpc"
        # Positional, in Exchange's field order (records.fast_new: 26 keyword arguments would
        # cost ~14,000 instructions per transaction in CPython 3.11).
        return _new_exchange(
            conn.conn_id, conn.connection_id, conn.ids.new(req_ts),  # conn_id, connection_id, request_id
            conn.pid, conn.exe, conn.container_id,  # pid, exe, container_id
            conn.local, conn.remote, conn.client, conn.direction,  # local, remote, client, direction
            conn.tls, conn.sni, protocol,  # tls, sni, protocol
            head, req_body, req_trailers,  # request, request_body, request_trailers
            response, body, trailers, status,  # response, response_body, response_trailers, status
            req_ts, res_ts, ts,  # request_ts_ns, response_ts_ns, end_ts_ns
            sent, received, reset)  # bytes_sent, bytes_received, reset_code


_new_exchange = fast_new(Exchange)

#: Protocol event type -> what the pairing does with it; RequestHead, ResponseHead and
#: ResponseEnd, which every exchange has, are handled in ``Pairing.apply`` itself.
_HANDLERS: dict[type, Callable[[Pairing, Any, int, list[Exchange]], None]] = {
    RequestEnd: Pairing._request_end,
    StreamReset: Pairing._reset,
    Desync: Pairing._ignore,
    Tunnel: Pairing._ignore,
}
