"""The eBPF capture source: compiles and attaches the programs, reads the ring buffer.

The ONLY module that imports bcc (and only inside :meth:`BpfSource.start`, so importing this
module works anywhere). Everything it reads from the kernel goes through :mod:`.decode` and
:class:`~.translate.Translator`, which are plain Python and tested without a kernel. The ring
buffer is read through this process's own mapping of it (:mod:`.ringbuf`: no per-record
callback into Python); the perf buffer, and the ring buffer off x86-64, through bcc.

Usage::

    with BpfSource(BpfOptions(ignore_loopback=False)) as src:
        print(src.start().describe())
        for ev in src.events(stop):
            ...
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any, Self

from qtap_fluent.agent.bpf import decode as d
from qtap_fluent.agent.bpf import discover, env, headers, ringbuf
from qtap_fluent.agent.bpf.options import (
    KERNEL_COUNTERS,
    Attached,
    BpfOptions,
    Counters,
    cflags,
    kernel_has_ringbuf,
    program_text,
)
from qtap_fluent.agent.bpf.probes import TlsProbes
from qtap_fluent.agent.bpf.translate import HostLookup, Translator
from qtap_fluent.agent.events import LostEvent, SourceEvent
from qtap_fluent.errors import ConfigError

__all__ = ["Attached", "BpfOptions", "BpfSource", "Counters", "cflags", "open_source",
           "program_text"]

_log = logging.getLogger("qtap_fluent.agent.bpf")

#: Ids of connections open before capture started (the kernel counts from 1, the translator's
#: own ids start at 1 << 62).
SEED_ID_BASE = 1 << 61
#: Kernel counters are read at most this often (each read is a syscall per counter).
_COUNTER_INTERVAL_S = 0.25
#: How long one poll of the iterator waits, and the longest silence before a heartbeat.
_ITER_POLL_MS = 250
_HEARTBEAT_S = 1.0


class BpfSource:
    """A capture source of DataEvent/CloseEvent/LostEvent from eBPF probes."""

    def __init__(self, options: BpfOptions | None = None, host: HostLookup | None = None
                 ) -> None:
        self.options = options or BpfOptions()
        bad = self.options.problems()
        if bad:
            raise ConfigError("eBPF source options: " + "; ".join(bad))
        self.counters = Counters()
        self._host: HostLookup = host or discover.ProcHost()
        self._bpf: Any = None
        self._pending: list[SourceEvent] = []
        self._translator = Translator(
            host=self._host, clock_offset_ns=time.time_ns() - time.monotonic_ns(),
            ignore_loopback=self.options.ignore_loopback, direction=self.options.direction)
        self._probes: TlsProbes | None = None
        self._next_counters = 0.0
        self._kernel_seen: dict[d.Counter, int] = {}
        self._perfbuf = False
        self._ring: ringbuf.RingBuffer | None = None  #: our own reader of the ring buffer
        self._attached: Attached | None = None
        self._closing = False
        self._next_seed_id = SEED_ID_BASE
        self._paused_tps: list[bytes] = []
        self._iterating = False
        self._detach_lock = threading.Lock()

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> Attached:
        """Compile, load and attach everything. Raises :class:`env.BpfUnavailable`."""
        if self._attached is not None:
            return self._attached
        if self._closing:
            raise env.BpfUnavailable([env.Missing(piece="an open source (it was closed)",
                                                  fix="make a new BpfSource")])
        missing = env.check()
        if missing:
            raise env.BpfUnavailable(missing)
        found = headers.find()
        if found is not None:
            os.environ["BCC_KERNEL_SOURCE"] = str(found.path)  # read by libbcc when compiling
        try:
            import bcc
        except ImportError:
            raise env.BpfUnavailable([env.BCC_MISSING]) from None
        self._perfbuf = (self.options.use_perfbuf if self.options.use_perfbuf is not None
                         else not kernel_has_ringbuf())
        try:
            self._bpf = bcc.BPF(text=program_text().encode(),
                                cflags=cflags(self.options, self._perfbuf))
        except Exception as exc:  # noqa: BLE001 - bcc raises bare Exception when it cannot load
            raise env.BpfUnavailable([env.Missing(
                piece=f"a loadable BPF program ({exc})",
                fix="check the kernel headers named by BCC_KERNEL_SOURCE match this kernel's "
                    f"major version, or re-run {env.SETUP}")]) from None
        try:
            self._open_buffer()
            skip = set(self.options.exclude_pids)
            if self.options.exclude_self:
                skip.add(os.getpid())
            for pid in skip:
                self.exclude_pid(pid)
            for pid in self.options.only_pids or ():
                self.include_only_pid(pid)
            self._probes = TlsProbes(self._bpf, self.counters, self._translator.note_exe,
                                     inner=self.options.inner_probes)
            self._probes.attach_initial(self.options.extra_targets,
                                        scan=self.options.scan_processes,
                                        interval_s=self.options.scan_interval_s)
            if self.options.seed_existing:
                self._seed_existing(skip)
        except BaseException:
            self.close()
            raise
        tps = tuple(sorted(k.decode() if isinstance(k, bytes) else str(k)
                           for k in self._bpf.tracepoint_fds))
        self._attached = Attached(
            libraries=tuple((t.library.kind, t.path) for t in self._probes.targets()),
            tracepoints=tps, buffer="perf buffer" if self._perfbuf else "ring buffer",
            headers=f"{found.path} ({found.found_by})" if found else "built into the kernel")
        _log.info("%s", self._attached.describe())
        return self._attached

    def close(self) -> None:
        """Detach every probe and tracepoint and free the buffers. Idempotent, thread-safe."""
        self._closing = True
        if not self._iterating:
            self._detach()

    def _detach(self) -> None:
        with self._detach_lock:
            bpf, self._bpf = self._bpf, None
            ring, self._ring = self._ring, None
            if ring is not None:
                ring.close()
            if bpf is not None:
                bpf.cleanup()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def attached(self) -> Attached | None:
        return self._attached

    # ---- reading ------------------------------------------------------------------------

    def __iter__(self) -> Iterator[SourceEvent]:
        """The :class:`qtap_fluent.agent.sources.Source` protocol: events until :meth:`close`.

        Starts the source if needed. Yields a ``LostEvent(count=0, reason="heartbeat")`` after
        a second without events so the consumer can evict idle connections on time. ``close()``
        may be called from another thread (a signal handler): the probes are then detached
        here, between two polls, never under a running poll.
        """
        self._iterating = True  # before start(): a close() meanwhile must leave cleanup to us
        try:
            self.start()
            quiet_since = time.monotonic()
            while not self._closing and self._bpf is not None:
                got = self.poll(_ITER_POLL_MS)
                now = time.monotonic()
                if got:
                    quiet_since = now
                    yield from got
                elif now - quiet_since >= _HEARTBEAT_S:
                    quiet_since = now
                    yield LostEvent(count=0, reason="heartbeat", ts_ns=time.time_ns())
        finally:
            self._iterating = False
            if self._closing:
                self._detach()

    def poll(self, timeout_ms: int = 100) -> list[SourceEvent]:
        """Wait up to ``timeout_ms`` for records; return the events they make (maybe none)."""
        if self._bpf is None:
            return []
        if self._ring is not None:
            # The kernel side wakes us only every QF_WAKEUP_EVERY records: after the wait,
            # take whatever arrived without a wake-up too.
            self._ring.wait(timeout_ms)
            self._read_ring(self._ring)
        elif self._perfbuf:
            self._bpf.perf_buffer_poll(timeout_ms)
        else:
            self._bpf.ring_buffer_poll(timeout_ms)
            self._bpf.ring_buffer_consume()
        now = time.monotonic()
        if now >= self._next_counters:
            self._next_counters = now + _COUNTER_INTERVAL_S
            self._read_kernel_counters()
        if self.options.scan_processes and self._probes is not None:
            self._probes.maybe_scan(now)
        out, self._pending = self._pending, []
        return out

    def events(self, stop: threading.Event | None = None, timeout_ms: int = 100
               ) -> Iterator[SourceEvent]:
        """Yield events until ``stop`` is set (or forever)."""
        while self._bpf is not None and (stop is None or not stop.is_set()):
            yield from self.poll(timeout_ms)

    def drain(self, timeout_ms: int = 200) -> list[SourceEvent]:
        """Everything still in the buffer (polls until one poll brings nothing)."""
        out: list[SourceEvent] = []
        while True:
            got = self.poll(timeout_ms)
            if not got:
                self._read_kernel_counters()
                out.extend(self._pending)
                self._pending = []
                return out
            out.extend(got)

    def exclude_pid(self, pid: int) -> None:
        """Stop looking at ``pid``'s new connections and TLS calls (in the kernel)."""
        if self._bpf is not None:
            self._bpf[b"qf_skip_pids"][ctypes.c_uint32(pid)] = ctypes.c_uint8(1)

    def include_only_pid(self, pid: int) -> None:
        """With ``only_pids``: look at ``pid`` too (from its next connection or TLS call)."""
        if self._bpf is not None:
            self._bpf[b"qf_only_pids"][ctypes.c_uint32(pid)] = ctypes.c_uint8(1)

    def include_pid(self, pid: int) -> None:
        """Undo :meth:`exclude_pid`."""
        if self._bpf is not None:
            try:
                del self._bpf[b"qf_skip_pids"][ctypes.c_uint32(pid)]
            except KeyError:
                pass

    # ---- internals ----------------------------------------------------------------------

    def _open_buffer(self) -> None:
        table = self._bpf[b"qf_events"]
        if self._perfbuf:
            table.open_perf_buffer(self._on_record, page_cnt=self.options.perfbuf_pages,
                                   lost_cb=self._on_lost)
        else:
            if self.options.direct_ring and ringbuf.supported():
                try:
                    self._ring = ringbuf.RingBuffer(table.get_fd())
                    return
                except OSError as exc:  # a kernel that refuses the mapping: bcc's reader
                    self.counters.errors.append(f"ring buffer mapping: {exc}")
            table.open_ring_buffer(self._on_record)

    def _read_ring(self, ring: ringbuf.RingBuffer) -> None:
        """Decode and translate every record waiting in our mapping of the ring buffer.

        The hot path of the agent: data records go from the mapping to a DataEvent with one
        unpack and one copy of their payload; the rarer kinds take the general decoder.
        """
        view, out, n = ring.view, self._pending, 0
        data_at, translate, ev_data = d.data_at, self._translator.data, d.EV_DATA
        try:
            for off, size in ring.records():
                n += 1
                # The kind's low byte picks the path; data_at checks the whole field.
                if view[off] == ev_data:
                    ev = translate(*data_at(view, off, size))
                    if ev is not None:
                        out.append(ev)
                else:
                    self._on_rec(d.decode(view[off:off + size]))
        except d.DecodeError as exc:
            self._undecodable(exc)  # the rest is read on the next poll
        finally:
            self.counters.records += n

    def _on_record(self, _ctx: object, data: int, size: int) -> int:
        # Called by bcc from inside ring_buffer_poll/consume or perf_buffer_poll, on the
        # polling thread (the perf buffer, and the ring buffer where ringbuf.py is not used).
        self.counters.records += 1
        try:
            rec = d.decode(ctypes.string_at(data, size))
        except d.DecodeError as exc:
            self._undecodable(exc)
            return 0
        self._on_rec(rec)
        return 0

    def _on_rec(self, rec: d.RawRecord) -> None:
        if type(rec) is d.RawExec and self._probes is not None and self.options.scan_processes:
            self._probes.note_exec(rec.pid)  # its libraries are mapped right after exec
        self._pending.extend(self._translator.feed(rec))

    def _undecodable(self, exc: d.DecodeError) -> None:
        self.counters.decode_errors += 1
        self._pending.append(LostEvent(count=1, reason=f"undecodable record: {exc}",
                                       ts_ns=time.time_ns()))

    def _on_lost(self, count: int) -> None:
        self.counters.lost_buffer += count
        self._emit([LostEvent(count=count, reason="perf buffer full", ts_ns=time.time_ns())])

    def _emit(self, events: list[SourceEvent]) -> None:
        self._pending.extend(events)

    def _read_kernel_counters(self) -> None:
        if self._bpf is None:
            return
        table = self._bpf[b"qf_counters"]
        for idx, name in KERNEL_COUNTERS.items():
            total = int(sum(table[ctypes.c_int(idx)]))
            delta = total - self._kernel_seen.get(idx, 0)
            if delta <= 0:
                continue
            self._kernel_seen[idx] = total
            setattr(self.counters, name, getattr(self.counters, name) + delta)
            if idx is d.Counter.RB_FULL:
                self._emit([LostEvent(count=delta, reason="ring buffer full",
                                      ts_ns=time.time_ns())])

    def _seed_existing(self, skip: set[int]) -> None:
        """Tell the kernel about connections that were open before the tracepoints were.

        Their connect/accept was never seen, so plaintext on them would be ignored. Ids come
        from their own range; the translator resolves addresses from the live socket.
        """
        only = self.options.only_pids
        pids = [p for p in discover.pids() if p not in skip and (only is None or p in only)]
        table = self._bpf[b"qf_socks"]
        for sock in discover.established_sockets(pids):
            key = table.Key((sock.pid << 32) | sock.fd)
            try:
                table[key]
                continue  # connected after the tracepoints came up: already known
            except KeyError:
                pass
            leaf = table.Leaf()
            self._next_seed_id += 1
            leaf.id = self._next_seed_id
            leaf.origin = 0  # unknown: the core decides client/server from the bytes
            table[key] = leaf
            self._translator.note_connection(leaf.id, sock.pid, sock.local, sock.remote)
            self.counters.seeded += 1

    def pause(self) -> None:
        """Detach every probe but keep the program loaded (for measuring overhead in one run:
        a paused source costs the traced processes nothing)."""
        if self._bpf is None or self._paused_tps:
            return
        self._paused_tps = list(self._bpf.tracepoint_fds)
        for ev_name in list(self._bpf.uprobe_fds):
            self._bpf.detach_uprobe_event(ev_name)
        for tp in self._paused_tps:
            self._bpf.detach_tracepoint(tp)

    def resume(self) -> None:
        """Attach again what :meth:`pause` detached."""
        if self._bpf is None or not self._paused_tps:
            return
        for tp in self._paused_tps:
            category, name = tp.split(b":")
            self._bpf.attach_tracepoint(tp=tp, fn_name=b"tracepoint__" + category + b"__" + name)
        self._paused_tps = []
        if self._probes is not None:
            self._probes.reattach()


def open_source(options: BpfOptions | None = None) -> BpfSource:
    """A started eBPF source (the ``bpf`` entry of ``agent.sources.LIVE_SOURCES``).

    :meth:`BpfSource.start` logs one line (logger ``qtap_fluent.agent.bpf``, INFO) once the
    probes are attached, saying what it attached to, so users and scripts know from when on
    traffic is seen. Raises :class:`env.BpfUnavailable` (a
    QtapFluentError naming the missing piece and its fix) when the host cannot do it.
    The default applies no in-kernel filter: the policy filters the records.
    """
    src = BpfSource(options or BpfOptions(ignore_loopback=False))
    src.start()
    return src
