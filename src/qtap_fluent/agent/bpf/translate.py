"""Turn decoded kernel records into the capture core's events (sans-I/O).

The kernel knows pids, fds and connection ids; the capture core wants connections with
addresses, an exe and a wall-clock time. :class:`Translator` keeps that state. What needs the
host (``/proc``, sockets of other processes) comes in through a :class:`HostLookup`, so this
module runs in tests with a fake one and touches nothing itself.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, field
from typing import Protocol

from qtap_fluent.agent.bpf import decode as d
from qtap_fluent.agent.events import (
    Address,
    CloseEvent,
    DataEvent,
    Direction,
    LostEvent,
    Origin,
    SourceEvent,
)

#: Connection ids the kernel did not assign (fd never seen at connect/accept) start here, so
#: they cannot collide with the kernel's counter.
SYNTH_ID_BASE = 1 << 62

_ORIGINS = {d.ORIGIN_CONNECT: Origin.CONNECT, d.ORIGIN_ACCEPT: Origin.ACCEPT}
#: Qtap ``tap.direction`` values -> the origins they keep (qtap.md: egress-internal/-external
#: split egress by the peer, which needs the address: done here, not in the kernel).
DIRECTION_ORIGINS: dict[str, frozenset[Origin]] = {
    "all": frozenset(Origin),
    "egress": frozenset({Origin.CONNECT, Origin.UNKNOWN}),
    "egress-internal": frozenset({Origin.CONNECT, Origin.UNKNOWN}),
    "egress-external": frozenset({Origin.CONNECT, Origin.UNKNOWN}),
    "ingress": frozenset({Origin.ACCEPT, Origin.UNKNOWN}),
}


class HostLookup(Protocol):
    """What the translator asks the host. Every method may return None (process gone)."""

    def exe(self, pid: int) -> str | None:
        """Absolute path of the process's executable (``/proc/PID/exe``)."""

    def socket_addresses(self, pid: int, fd: int) -> tuple[Address, Address] | None:
        """(local, remote) of the process's socket ``fd``; None if not a TCP/IP socket."""

    def resolve(self, path: str) -> str:
        """``path`` with symlinks resolved, as /proc/PID/exe would show it."""


@dataclass(slots=True)
class _Conn:
    conn_id: int
    pid: int
    origin: Origin
    local: Address | None
    remote: Address | None
    keep: bool = True
    synth_key: tuple[int, int, int] | None = None
    tls_key: tuple[int, int] | None = None  #: (pid, SSL*) once a TLS call was seen on it
    sni: str | None = None  #: the server name its TLS client asked for


@dataclass(slots=True)
class TranslatorStats:
    data_events: int = 0
    bytes_captured: int = 0
    bytes_truncated: int = 0
    connections: int = 0
    filtered: int = 0


@dataclass(slots=True)
class Translator:
    """Feed :class:`~qtap_fluent.agent.bpf.decode.RawRecord`; get :data:`SourceEvent` lists.

    ``clock_offset_ns`` turns the kernel's CLOCK_MONOTONIC into Unix time (the caller measures
    it once: ``time.time_ns() - time.monotonic_ns()``). The filters repeat the kernel's for
    connections whose peer the kernel could not see (opened before capture, accept(fd, NULL,
    NULL)): the peer is looked up and the rule applied here.
    """

    host: HostLookup
    clock_offset_ns: int = 0
    ignore_loopback: bool = False
    direction: str = "all"
    max_connections: int = 65536
    max_processes: int = 65536
    stats: TranslatorStats = field(default_factory=TranslatorStats)
    _exe: dict[int, str] = field(default_factory=dict)
    _conns: dict[int, _Conn] = field(default_factory=dict)
    _synth: dict[tuple[int, int, int], int] = field(default_factory=dict)
    _by_pid: dict[int, set[int]] = field(default_factory=dict)
    _by_ptr: dict[tuple[int, int], int] = field(default_factory=dict)
    #: (pid, SSL*) -> server name, set before the handshake, until the first data on it
    _sni: dict[tuple[int, int], str] = field(default_factory=dict)
    _next_synth: int = SYNTH_ID_BASE

    def __post_init__(self) -> None:
        if self.direction not in DIRECTION_ORIGINS:
            raise ValueError(f"unknown direction {self.direction!r}; "
                             f"expected one of {', '.join(DIRECTION_ORIGINS)}")

    def feed(self, rec: d.RawRecord) -> list[SourceEvent]:
        """Process one kernel record; return the events it completes (often none)."""
        if isinstance(rec, d.RawData):
            ev = self.data(rec.pid, rec.tid, rec.fd, rec.ts_ns, rec.sock_id, rec.tls_ptr,
                           rec.real_len, rec.direction, int(rec.source), rec.data)
            return [] if ev is None else [ev]
        if isinstance(rec, d.RawSni):
            self.note_sni(rec.pid, rec.tls_ptr, rec.name)
            return []
        if isinstance(rec, d.RawSock):
            self._sock(rec)
            return []
        if isinstance(rec, d.RawLocal):
            conn = self._conns.get(rec.sock_id)
            if conn is not None and rec.family in (d.AF_INET, d.AF_INET6):
                conn.local = Address(ip=_ip(rec.laddr), port=rec.lport)
            return []
        if isinstance(rec, d.RawClose):
            conn = self._forget(rec.sock_id)
            if conn is None or not conn.keep:
                return []
            return [CloseEvent(conn_id=conn.conn_id, pid=rec.pid, ts_ns=self._wall(rec.ts_ns))]
        if isinstance(rec, d.RawExec):
            self.note_exec(rec.pid, rec.filename)
            return []
        return self._exit(rec)

    def note_exec(self, pid: int, filename: str) -> None:
        """A process exec'd ``filename``: take its exe now."""
        # Read /proc/PID/exe now, while the process surely exists; execve's argument is
        # the fallback (it may be relative or a symlink).
        self._exe.pop(pid, None)  # exec replaces the image: forget the old exe
        self._remember_exe(pid, self.host.exe(pid) or self.host.resolve(filename))

    def note_sni(self, pid: int, tls_ptr: int, name: str) -> None:
        """A TLS client set the server name of ``tls_ptr``; its connection's data carries it.

        The name is set before the handshake, so before any data: it waits here until the
        first data record of that SSL* ties it to a connection (an SSL* that is freed and
        reallocated for the next connection sets its name again before use).
        """
        if len(self._sni) >= self.max_connections:
            del self._sni[next(iter(self._sni))]  # bounded like the connections
        self._sni[(pid, tls_ptr)] = name

    def note_exe(self, pid: int, exe: str) -> None:
        """Remember a process's exe seen before capture started (it will not exec again)."""
        if pid not in self._exe:
            self._remember_exe(pid, exe)

    def note_connection(self, conn_id: int, pid: int, local: Address, remote: Address) -> None:
        """A connection that was open before capture (origin unknown, addresses known)."""
        self._add(conn_id, pid, Origin.UNKNOWN, local, remote, checked=False)

    def lost(self, count: int, reason: str, now_ns: int) -> LostEvent:
        """A LostEvent for drops the caller counted (ring buffer full, decode errors)."""
        return LostEvent(count=count, reason=reason, ts_ns=now_ns)

    # ---- records ----------------------------------------------------------------------

    def _wall(self, ktime_ns: int) -> int:
        return ktime_ns + self.clock_offset_ns

    def _exe_of(self, pid: int) -> str:
        exe = self._exe.get(pid)
        if exe is None:
            exe = self.host.exe(pid) or ""
            self._remember_exe(pid, exe)
        return exe

    def _remember_exe(self, pid: int, exe: str) -> None:
        # Bounded: exit records normally empty this, but a lost exit would leak an entry.
        if len(self._exe) >= self.max_processes:
            del self._exe[next(iter(self._exe))]
        self._exe[pid] = exe

    def _sock(self, rec: d.RawSock) -> None:
        origin = _ORIGINS.get(rec.origin, Origin.UNKNOWN)
        local: Address | None = None
        remote: Address | None = None
        if rec.family in (d.AF_INET, d.AF_INET6):
            remote = Address(ip=_ip(rec.raddr), port=rec.rport)
            if rec.laddr is not None:
                local = Address(ip=_ip(rec.laddr), port=rec.lport)
        if local is None or remote is None:
            # accept(fd, NULL, NULL), or the kernel missed our end: ask the socket itself.
            found = self.host.socket_addresses(rec.pid, rec.fd)
            if found is not None:
                local, remote = local or found[0], remote or found[1]
        self._add(rec.sock_id, rec.pid, origin, local, remote, checked=rec.family != 0)

    def _add(self, conn_id: int, pid: int, origin: Origin, local: Address | None,
             remote: Address | None, *, checked: bool) -> _Conn:
        keep = origin in DIRECTION_ORIGINS[self.direction]
        if keep and self.ignore_loopback and not checked and remote is not None:
            keep = not ipaddress.ip_address(remote.ip).is_loopback
        if not keep:
            self.stats.filtered += 1
        if len(self._conns) >= self.max_connections:
            # Bounded: forget the oldest connection (dicts keep insertion order).
            self._forget(next(iter(self._conns)))
        conn = _Conn(conn_id=conn_id, pid=pid, origin=origin, local=local, remote=remote,
                     keep=keep)
        self._conns[conn_id] = conn
        self._by_pid.setdefault(pid, set()).add(conn_id)
        self.stats.connections += 1
        return conn

    def _conn_slow(self, pid: int, fd: int, sid: int, ptr: int) -> _Conn:
        """The connection of a data record that is not a known one with its SSL* noted."""
        if sid:
            conn = self._conns.get(sid)
            if conn is None:
                conn = self._add_resolved(sid, pid, fd)
        else:
            conn = self._untracked(pid, fd, ptr)
        if ptr and conn.tls_key is None:
            # Remember the SSL*/session: a later call whose fd the kernel did not learn
            # (data already buffered inside the library) still lands on this connection.
            conn.tls_key = (pid, ptr)
            self._by_ptr[conn.tls_key] = conn.conn_id
            conn.sni = self._sni.pop(conn.tls_key, None)
        return conn

    def _untracked(self, pid: int, fd: int, ptr: int) -> _Conn:
        """A connection the kernel never saw connect or accept: keyed by what we know."""
        if fd < 0 and ptr:
            cid = self._by_ptr.get((pid, ptr))
            if cid is not None and cid in self._conns:
                return self._conns[cid]
        key = (pid, fd, ptr if fd < 0 else 0)
        cid = self._synth.get(key)
        if cid is not None and cid in self._conns:
            return self._conns[cid]
        cid = self._next_synth
        self._next_synth += 1
        self._synth[key] = cid
        conn = self._add_resolved(cid, pid, fd)
        conn.synth_key = key
        return conn

    def _add_resolved(self, conn_id: int, pid: int, fd: int) -> _Conn:
        found = self.host.socket_addresses(pid, fd) if fd >= 0 else None
        local, remote = found if found is not None else (None, None)
        return self._add(conn_id, pid, Origin.UNKNOWN, local, remote, checked=False)

    def data(self, pid: int, tid: int, fd: int, ts_ns: int, sock_id: int, tls_ptr: int,
             real_len: int, direction: int, source: int, data: bytes) -> DataEvent | None:
        """One data record (the fields :func:`decode.data_at` returns): its event, or None
        when its connection is filtered out. The reader's hot path: two dict lookups and one
        event in the common case."""
        conn = self._conns.get(sock_id) if sock_id else None
        if conn is None or (tls_ptr and conn.tls_key is None):
            conn = self._conn_slow(pid, fd, sock_id, tls_ptr)
        if not conn.keep:
            return None
        stats = self.stats
        stats.data_events += 1
        n = len(data)
        stats.bytes_captured += n
        stats.bytes_truncated += real_len - n
        exe = self._exe.get(pid)
        if exe is None:
            exe = self._exe_of(pid)
        return _new_data_event(
            conn.conn_id, pid, tid, exe, _INBOUND if direction else _OUTBOUND, conn.local,
            conn.remote, conn.origin, source != _SYSCALL, ts_ns + self.clock_offset_ns, data,
            real_len, conn.sni, None)

    def _exit(self, rec: d.RawExit) -> list[SourceEvent]:
        """The process is gone: so are its connections (the kernel closes fds without close())."""
        self._exe.pop(rec.pid, None)
        out: list[SourceEvent] = []
        for cid in sorted(self._by_pid.get(rec.pid, ())):
            conn = self._forget(cid)
            if conn is not None and conn.keep:
                out.append(CloseEvent(conn_id=cid, pid=rec.pid, ts_ns=self._wall(rec.ts_ns)))
        self._by_pid.pop(rec.pid, None)
        return out

    def _forget(self, conn_id: int) -> _Conn | None:
        conn = self._conns.pop(conn_id, None)
        if conn is not None:
            if conn.synth_key is not None:
                self._synth.pop(conn.synth_key, None)
            if conn.tls_key is not None and self._by_ptr.get(conn.tls_key) == conn_id:
                del self._by_ptr[conn.tls_key]
            ids = self._by_pid.get(conn.pid)
            if ids is not None:
                ids.discard(conn_id)
                if not ids:
                    del self._by_pid[conn.pid]
        return conn


_OUTBOUND, _INBOUND = Direction.OUTBOUND, Direction.INBOUND
_SYSCALL = int(d.Source.SYSCALL)
#: DataEvent's fields in declaration order: the arguments of :func:`_new_data_event`.
DATA_EVENT_FIELDS = ("conn_id", "pid", "tid", "exe", "direction", "local", "remote", "origin",
                     "tls", "ts_ns", "data", "real_len", "sni", "container_id")
#: True when DataEvent still has exactly these fields (a test checks it stays so).
FAST_DATA_EVENT = tuple(f.name for f in dataclasses.fields(DataEvent)) == DATA_EVENT_FIELDS


def _new_data_event(conn_id: int, pid: int, tid: int, exe: str, direction: Direction,
                    local: Address | None, remote: Address | None, origin: Origin, tls: bool,
                    ts_ns: int, data: bytes, real_len: int, sni: str | None,
                    container_id: str | None) -> DataEvent:
    """``DataEvent(...)`` positionally, at about 40% of the keyword constructor's cost.

    A frozen dataclass's ``__init__`` parses keywords and calls ``object.__setattr__`` once
    per field; this sets the slots through their descriptors instead. Falls back to the
    constructor if DataEvent's fields ever differ from :data:`DATA_EVENT_FIELDS`.
    """
    if not FAST_DATA_EVENT:
        return DataEvent(conn_id=conn_id, pid=pid, tid=tid, exe=exe, direction=direction,
                         local=local, remote=remote, origin=origin, tls=tls, ts_ns=ts_ns,
                         data=data, real_len=real_len, sni=sni, container_id=container_id)
    ev: DataEvent = _new(DataEvent)
    _s_conn_id(ev, conn_id)
    _s_pid(ev, pid)
    _s_tid(ev, tid)
    _s_exe(ev, exe)
    _s_direction(ev, direction)
    _s_local(ev, local)
    _s_remote(ev, remote)
    _s_origin(ev, origin)
    _s_tls(ev, tls)
    _s_ts_ns(ev, ts_ns)
    _s_data(ev, data)
    _s_real_len(ev, real_len)
    _s_sni(ev, sni)
    _s_container_id(ev, container_id)
    return ev


_new = object.__new__
if FAST_DATA_EVENT:
    (_s_conn_id, _s_pid, _s_tid, _s_exe, _s_direction, _s_local, _s_remote, _s_origin, _s_tls,
     _s_ts_ns, _s_data, _s_real_len, _s_sni, _s_container_id) = (
        getattr(DataEvent, name).__set__ for name in DATA_EVENT_FIELDS)



def _ip(raw: bytes) -> str:
    """Text form; an IPv4-mapped IPv6 address (dual-stack socket) is shown as IPv4."""
    ip = ipaddress.ip_address(raw)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)
