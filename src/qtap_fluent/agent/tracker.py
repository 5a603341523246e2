"""Per-connection state: protocol detection, parser dispatch, gaps, idle eviction, bounds.

Pure: events in (``agent.events``), exchanges out (``agent.assembler.Exchange``); the clock is
the ``ts_ns`` of events and the ``now_ns`` the caller passes to ``evict``. Every bound has a
counter of what it dropped (``Counters``):

* at most ``Limits.max_connections`` tracked connections: new ones beyond are ignored
  (``connections_refused``) -- refusing new work keeps the existing exchanges whole;
* connections idle longer than ``Limits.idle_timeout_ns`` are finished (``connections_evicted``);
  their unanswered requests end as 499;
* detection holds at most ``MAX_DETECT_HOLD`` bytes; each body keeps ``body_limit`` bytes and
  all open bodies together at most ``body_memory`` (``body_bytes_dropped``);
  HTTP/1 and HTTP/2 parsers bound their own buffers and desynchronise past them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from qtap_fluent.agent import assembler
from qtap_fluent.agent.assembler import Exchange, Pairing
from qtap_fluent.agent.events import (
    Address,
    CloseEvent,
    DataEvent,
    Direction,
    LostEvent,
    Origin,
    SourceEvent,
)
from qtap_fluent.agent.ids import XidGenerator
from qtap_fluent.agent.protocols import detect
from qtap_fluent.agent.protocols.body import DEFAULT_BODY_LIMIT, Budget
from qtap_fluent.agent.protocols.events import ProtocolEvent
from qtap_fluent.agent.protocols.http1 import Http1Connection
from qtap_fluent.agent.protocols.http2 import Http2Connection

Parser = Http1Connection | Http2Connection

# Enum members as module constants: in CPython 3.11 ``Direction.OUTBOUND`` costs a descriptor
# call on the enum class (~1,000 instructions), once per event on the hot path.
_OUTBOUND, _INBOUND = Direction.OUTBOUND, Direction.INBOUND
_CONNECT, _ACCEPT = Origin.CONNECT, Origin.ACCEPT
#: The direction a client's bytes go, by how the observed process got the socket.
_CLIENT_DIR = {_CONNECT: _OUTBOUND, _ACCEPT: _INBOUND}

#: Bytes held per connection while its protocol is undecided (the server may speak first).
MAX_DETECT_HOLD = 16 * 1024

#: The protocol parser for each detected protocol: one table, one place.
PARSERS: dict[str, Callable[[int, Budget], Parser]] = {
    detect.HTTP1_REQUEST: Http1Connection,
    detect.HTTP2: Http2Connection,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    max_connections: int = 65_536
    idle_timeout_ns: int = 300 * 1_000_000_000
    body_limit: int = DEFAULT_BODY_LIMIT
    #: Body bytes held by all open bodies together; past it bodies are cut (body_bytes_dropped).
    body_memory: int = 256 * 1024 * 1024


@dataclass(slots=True)
class Counters:
    """What the core did and dropped; the runner exposes them as Prometheus counters."""

    transactions_emitted: int = 0
    dropped_by_policy: int = 0
    connections_desynchronised: int = 0
    bytes_truncated: int = 0
    events_lost: int = 0
    connections_refused: int = 0
    connections_evicted: int = 0
    connections_ignored: int = 0
    responses_unpaired: int = 0
    body_bytes_dropped: int = 0
    extra: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnInfo:
    """What is known about a connection when its role is decided: input to connection filters."""

    pid: int
    exe: str
    local: Address | None
    remote: Address | None
    client: bool
    direction: str
    tls: bool
    sni: str
    container_id: str


class Connection:
    """One tracked connection (mutable, owned by the tracker)."""

    __slots__ = (
        "bytes_in",
        "bytes_out",
        "client",
        "client_dir",
        "conn_id",
        "connection_id",
        "container_id",
        "direction",
        "exe",
        "ids",
        "last_ns",
        "local",
        "origin",
        "pairing",
        "parser",
        "pending",
        "pid",
        "protocol",
        "remote",
        "sni",
        "state",
        "tls",
    )

    def __init__(self, ev: DataEvent, ids: XidGenerator, container_id: str) -> None:
        self.conn_id = ev.conn_id
        self.ids = ids
        self.connection_id = ids.new(ev.ts_ns)
        self.pid = ev.pid
        self.exe = ev.exe
        self.local = ev.local
        self.remote = ev.remote
        self.origin = ev.origin
        self.tls = ev.tls
        self.sni = ev.sni or ""
        self.container_id = container_id
        self.client = ev.origin is _CONNECT
        self.direction = ""
        self.client_dir: Direction | None = _CLIENT_DIR.get(ev.origin)
        self.state = "detect"  #: detect, http, other, ignored, desync, tunnel
        self.parser: Parser | None = None
        self.protocol = ""
        self.pending: list[DataEvent] = []  #: events held while detecting
        self.last_ns = ev.ts_ns
        self.bytes_out = 0
        self.bytes_in = 0
        self.pairing = Pairing(self)


class Tracker:
    """Turns source events into exchanges. ``accept`` decides per connection (policy filters)."""

    def __init__(self, *, limits: Limits | None = None, counters: Counters | None = None,
                 accept: Callable[[ConnInfo], bool] | None = None,
                 container_lookup: Callable[[int], str | None] | None = None,
                 ids: XidGenerator | None = None) -> None:
        self.limits = limits or Limits()
        self.counters = counters or Counters()
        self.accept = accept
        self.container_lookup = container_lookup
        self.ids = ids or XidGenerator("qtap-fluent", 0)
        #: Tracked connections, least recently used first (insertion order, see handle).
        self.conns: dict[int, Connection] = {}
        self.budget = Budget(self.limits.body_memory)

    def sync_counters(self) -> Counters:
        """Counters with the body budget's drops folded in (call before reading them)."""
        self.counters.body_bytes_dropped = self.budget.dropped
        return self.counters

    # -- events ------------------------------------------------------------------------------

    def handle(self, ev: SourceEvent) -> list[Exchange]:
        """Apply one source event; return the exchanges it completed."""
        if isinstance(ev, DataEvent):
            # The per-event bookkeeping of a data event, inlined here (one Python call less
            # per event than a separate method).
            conns = self.conns
            cid = ev.conn_id
            # Least recently used first (``evict``): pop and put back at the end. A plain
            # dict's pop and store cost ~300 instructions less per event than OrderedDict's
            # get and move_to_end (callgrind).
            conn = conns.pop(cid, None)
            if conn is None:
                conn = self._open(ev)
                if conn is None:
                    return []
            else:
                conns[cid] = conn
            ts = conn.last_ns = ev.ts_ns
            real_len = ev.real_len
            data = ev.data
            direction = ev.direction
            if direction is _OUTBOUND:
                conn.bytes_out += real_len
            else:
                conn.bytes_in += real_len
            gap = real_len - len(data)
            if gap > 0:
                self.counters.bytes_truncated += gap
            elif conn.state == "http" and data:
                # _feed for the usual event (bytes, nothing lost), inlined: one call less.
                parser = conn.parser
                assert parser is not None
                events = (parser.feed_client(data) if direction is conn.client_dir
                          else parser.feed_server(data))
                if not events:
                    return []
                if parser.state == "http":
                    return conn.pairing.apply(events, ts)
                return self._left_http(conn, parser, events, ev)
            state = conn.state
            if state == "http":
                return self._feed(conn, ev, gap)
            if state == "detect":
                return self._detect(conn, ev, gap)
            return []
        if isinstance(ev, CloseEvent):
            conn = self.conns.pop(ev.conn_id, None)
            return self._finish(conn, ev.ts_ns) if conn is not None else []
        if isinstance(ev, LostEvent):
            self.counters.events_lost += ev.count
        return []

    def evict(self, now_ns: int) -> list[Exchange]:
        """Finish connections idle for longer than the idle timeout."""
        out: list[Exchange] = []
        cutoff = now_ns - self.limits.idle_timeout_ns
        # One pass from the least recently used end: the plain dict's first entries can be
        # holes left by ``handle``'s pop-and-store (until the dict compacts on growth), so
        # asking for the first entry again per evicted connection could rescan them.
        idle: list[Connection] = []
        for conn in self.conns.values():
            if conn.last_ns > cutoff:
                break
            idle.append(conn)
        for conn in idle:
            del self.conns[conn.conn_id]
            self.counters.connections_evicted += 1
            out += self._finish(conn, now_ns)
        return out

    def close_all(self, now_ns: int) -> list[Exchange]:
        """The source ended: finish every connection (close-delimited bodies end here)."""
        out: list[Exchange] = []
        for conn in list(self.conns.values()):
            out += self._finish(conn, now_ns)
        self.conns.clear()
        return out

    # -- internals ---------------------------------------------------------------------------

    def _open(self, ev: DataEvent) -> Connection | None:
        """Start tracking the connection of ``ev``; None when the connection limit is reached."""
        if len(self.conns) >= self.limits.max_connections:
            self.counters.connections_refused += 1
            return None
        cid = ev.container_id
        if cid is None and self.container_lookup is not None:
            cid = self.container_lookup(ev.pid)
        conn = self.conns[ev.conn_id] = Connection(ev, self.ids, cid or "")
        return conn

    def _feed(self, conn: Connection, ev: DataEvent, gap: int) -> list[Exchange]:
        parser = conn.parser
        assert parser is not None
        if ev.direction is conn.client_dir:
            events = parser.feed_client(ev.data) if ev.data else []
            if gap > 0:
                events = events + parser.gap_client(gap)
        else:
            events = parser.feed_server(ev.data) if ev.data else []
            if gap > 0:
                events = events + parser.gap_server(gap)
        if not events:
            return []
        if parser.state != "http":
            return self._left_http(conn, parser, events, ev)
        return conn.pairing.apply(events, ev.ts_ns)

    def _left_http(self, conn: Connection, parser: Parser, events: list[ProtocolEvent],
                   ev: DataEvent) -> list[Exchange]:
        """``events`` ended HTTP on the connection (Desync/Tunnel): pair them, then follow."""
        self._watch(conn, parser)
        if parser.tunnel_reason == "h2c" and isinstance(parser, Http1Connection):
            return conn.pairing.apply(events, ev.ts_ns) + self._to_h2c(conn, parser, ev)
        return conn.pairing.apply(events, ev.ts_ns)

    def _to_h2c(self, conn: Connection, old: Http1Connection, ev: DataEvent) -> list[Exchange]:
        """Switch an upgraded connection to HTTP/2: the upgrade request is now stream 1."""
        conn.pairing.upgraded(old.next_response)  # the HTTP/1 number of the upgrade request
        new = Http2Connection.upgraded(self.limits.body_limit, self.budget)
        client, server = old.upgraded_bytes()
        old.discard()
        conn.parser, conn.protocol, conn.state = new, "http2", "http"
        events = new.feed_client(client) if client else []
        if server:
            events += new.feed_server(server)
        if new.state != "http":
            self._watch(conn, new)
        return conn.pairing.apply(events, ev.ts_ns) if events else []

    def _watch(self, conn: Connection, parser: Parser) -> None:
        """The parser left HTTP (a Desync or Tunnel event): the connection follows it."""
        if conn.state == "http":
            conn.state = parser.state
            if parser.state == "desync":
                self.counters.connections_desynchronised += 1

    def _detect(self, conn: Connection, ev: DataEvent, gap: int) -> list[Exchange]:
        conn.pending.append(ev)
        first: dict[Direction, bytes] = {}
        for e in conn.pending:
            first[e.direction] = first.get(e.direction, b"") + e.data
        verdicts = {d: detect.detect(b[:detect.NEED]) for d, b in first.items()}
        decided = None
        for d, verdict in verdicts.items():
            server_side = conn.client_dir is not None and d is not conn.client_dir
            if verdict in PARSERS:
                if server_side:
                    return self._give_up(conn, "desync")  # roles contradict the socket
                decided, conn.client_dir = verdict, d
            elif verdict == detect.HTTP2_FRAMES and (server_side or conn.client_dir is None):
                continue  # the server's SETTINGS may precede the client preface (RFC 9113 §3.4)
            elif verdict in (detect.HTTP1_RESPONSE, detect.HTTP2_FRAMES):
                # A response or frames from the client: the capture started mid-connection;
                # don't guess which request this answers or what the HPACK table holds.
                return self._give_up(conn, "desync")
            elif verdict == detect.OTHER:
                return self._give_up(conn, "other")
        if decided is None:
            if gap or sum(len(e.data) for e in conn.pending) > MAX_DETECT_HOLD:
                return self._give_up(conn, "desync" if detect.HTTP2_FRAMES in verdicts.values()
                                     else "other")
            if len(verdicts) == 2 and all(v == detect.HTTP2_FRAMES for v in verdicts.values()):
                return self._give_up(conn, "desync")
            return []
        assert conn.client_dir is not None
        conn.client = conn.client_dir is _OUTBOUND
        conn.direction = assembler.direction_of(conn.client, conn.remote)
        conn.protocol = "http2" if decided == detect.HTTP2 else "http1"
        if self.accept is not None and not self.accept(ConnInfo(
                pid=conn.pid, exe=conn.exe, local=conn.local, remote=conn.remote,
                client=conn.client, direction=conn.direction, tls=conn.tls, sni=conn.sni,
                container_id=conn.container_id)):
            self.counters.connections_ignored += 1
            conn.state = "ignored"
            conn.pending = []
            return []
        conn.parser = PARSERS[decided](self.limits.body_limit, self.budget)
        conn.state = "http"
        held: list[DataEvent] = conn.pending
        conn.pending = []
        out: list[Exchange] = []
        for e in held:
            if conn.state != "http":
                break
            out += self._feed(conn, e, e.real_len - len(e.data))
        return out

    def _give_up(self, conn: Connection, state: str) -> list[Exchange]:
        conn.state = state
        conn.pending = []
        if state == "desync":
            self.counters.connections_desynchronised += 1
        return []

    def _finish(self, conn: Connection, ts: int) -> list[Exchange]:
        out: list[Exchange] = []
        if conn.parser is not None and conn.state == "http":
            events = conn.parser.close()
            if events:
                self._watch(conn, conn.parser)
                out += conn.pairing.apply(events, ts)
        if conn.parser is not None:
            conn.parser.discard()
        out += conn.pairing.finish(ts)
        self.counters.responses_unpaired += conn.pairing.unpaired
        conn.pairing.unpaired = 0
        return out
