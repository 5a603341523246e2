"""A reliable forward-protocol client: what the agent sends its records with.

Usage::

    from qtap_fluent.fluentbit.forward.client import ForwardClient, tls_context

    with ForwardClient("127.0.0.1", 24224, require_ack=True, compress="gzip",
                       spool_dir="/var/lib/qtap-fluent/spool") as client:
        client.emit("qtap.http", {"request": {...}})      # never blocks on the network
        client.emit_many("qtap.http", [(t, rec), ...])    # a batch: one lock for all of it
        client.flush(timeout=10)                          # True once all is acknowledged
    # close() on exit delivers what is queued (spools the rest when a spool is set)

What it does:

* **Transport**: TCP, TLS (``ssl_context=tls_context(cafile=..., verify=...)``) or a unix
  socket (``unix_path=``). One background thread owns the socket; plain sockets are written
  without blocking from its select() loop, several frames per ``sendmsg``.
* **Batching**: records are packed on the caller's thread (msgspec when installed, else
  msgpack; outside the lock) into one open batch per tag and sealed by count
  (``batch_records``), size (``batch_bytes``) or age (``batch_age`` seconds) into
  PackedForward frames, optionally ``compress="gzip"`` (ISA-L when installed) or ``"zstd"``
  (Fluent Bit ≥ 4.1 in_forward and our server accept it). A full batch is sent from the
  buffer it was packed in, and the buffer is reused once the frame is acknowledged.
* **Acks** (``require_ack``, on by default): every frame carries a 128-bit ``chunk`` id
  (Base64: a random per-client prefix and a counter); up to ``max_in_flight`` frames are on
  the wire at once (pipelining). A frame not acknowledged within ``ack_timeout`` seconds, or
  in flight when the connection drops, is sent again: delivery is at-least-once and a
  receiver may see duplicates.
* **Reconnect** with exponential backoff and full jitter (``backoff_base`` .. ``backoff_max``).
* **Handshake** when ``auth=ClientAuth(shared_key=..., username=..., password=...)`` is set: PING
  fields go as msgpack str and nothing is sent before the PONG is verified.
* **Bounded queue**: at most ``queue_max_records`` (default 10,000) records wait in memory.
  When full, ``overflow="block"`` (default) makes ``emit`` wait, ``"drop-oldest"`` discards
  the oldest sealed batch and counts it in ``stats.dropped_records``. A small queue is also
  faster: records still in memory when the next ones are packed stay in the CPU cache.
* **Spool** (``spool_dir``, bounded by ``spool_max_bytes``): while the receiver is
  unreachable, sealed batches move to disk so the memory queue never fills; at start the
  client resends what an earlier run left there. ``close()`` spools whatever it could not
  deliver in time. A full spool blocks (``"block"``) or deletes its oldest frame
  (``"drop-oldest"``, counted).
* **Defaults**: ``batch_records=1000``, ``batch_bytes=1 MiB`` (a chunk never exceeds it, so
  it stays under in_forward's 6,144,000-byte ``buffer_max_size``), ``batch_age=0.2`` s,
  ``max_in_flight=4``, ``ack_timeout=30`` s, ``backoff_base=0.05`` s, ``backoff_max=10`` s.

Counters: :attr:`ForwardClient.stats` (a :class:`ClientStats`).
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import select
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Self

import msgpack

from .batcher import Batcher, Chunk, entry_head
from .connection import ClientConnection
from .encode import compress as compress_payload
from .encode import packed_forward_parts, shared_record_packer
from .events import Ack, EventTime, ForwardProtocolError
from .handshake import ClientAuth
from .spool import Spool, SpoolEntry, chunk_id_of

log = logging.getLogger("qtap_fluent.forward.client")

Overflow = Literal["block", "drop-oldest"]


@dataclass(slots=True)
class ClientStats:
    """Counters since the client started (records unless the name says chunks)."""

    emitted: int = 0
    sent_records: int = 0
    acked_records: int = 0
    dropped_records: int = 0
    sent_chunks: int = 0
    acked_chunks: int = 0
    resent_chunks: int = 0
    spooled_chunks: int = 0
    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    ack_timeouts: int = 0
    protocol_errors: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(slots=True)
class _Out:
    """A frame ready to send: in memory (``parts``) and/or on disk (``entry``)."""

    chunk_id: str
    count: int
    parts: list[bytes | memoryview] | None
    entry: SpoolEntry | None = None
    raw_id: bytes = b""  #: the 16 random bytes behind chunk_id (names the spool file)
    sent_at: float = 0.0
    chunk: Chunk | None = None  #: whose batch buffer ``parts`` may point into (recycled once)
    pending: list[bytes | memoryview] = field(default_factory=list)  #: not yet written


def tls_context(
    cafile: str | None = None,
    *,
    verify: bool = True,
    certfile: str | None = None,
    keyfile: str | None = None,
) -> ssl.SSLContext:
    """A client TLS context: system CAs or ``cafile``; ``verify=False`` disables checks
    (like Fluent Bit's ``tls.verify off``); ``certfile``/``keyfile`` for client certificates."""
    ctx = ssl.create_default_context(cafile=cafile)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if certfile:
        ctx.load_cert_chain(certfile, keyfile)
    return ctx


class ForwardClient:
    """Batching, acknowledging, reconnecting forward client (thread-safe ``emit``)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 24224,
        *,
        unix_path: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        auth: ClientAuth | None = None,
        require_ack: bool = True,
        ack_timeout: float = 30.0,
        max_in_flight: int = 4,
        batch_records: int = 1000,
        batch_bytes: int = 1 << 20,
        batch_age: float = 0.2,
        compress: str | None = None,
        compress_level: int | None = None,
        queue_max_records: int = 10_000,
        max_record_bytes: int = 6_000_000,
        overflow: Overflow = "block",
        spool_dir: str | os.PathLike[str] | None = None,
        spool_max_bytes: int = 1 << 30,
        connect_timeout: float = 5.0,
        backoff_base: float = 0.05,
        backoff_max: float = 10.0,
    ) -> None:
        if overflow not in ("block", "drop-oldest"):
            raise ValueError(f"overflow must be 'block' or 'drop-oldest', not {overflow!r}")
        if compress not in (None, "gzip", "zstd"):
            raise ValueError(f"compress must be None, 'gzip' or 'zstd', not {compress!r}")
        self.host, self.port, self.unix_path = host, port, unix_path
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname or host
        self.auth = auth
        self.require_ack = require_ack
        self.ack_timeout = ack_timeout
        self.max_in_flight = max(1, max_in_flight)
        self.compress = compress
        self.compress_level = compress_level
        self.queue_max_records = queue_max_records
        self.max_record_bytes = max_record_bytes
        self.overflow = overflow
        self.connect_timeout = connect_timeout
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self.stats = ClientStats()

        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        # Buffers of in-flight chunks come back to the batcher: keep enough spares for a full
        # pipeline so steady traffic never allocates a new one.
        self._batcher = Batcher(max_records=batch_records, max_bytes=batch_bytes,
                                max_age=batch_age, spare_buffers=self.max_in_flight + 2)
        # Records are packed before the lock is taken, so the sender thread never waits on a
        # lock held through a 2 us pack. Strict UTF-8 is the fast path (a tolerant packer
        # re-encodes every str, ~3x slower on text-heavy records); surrogate-escaped strs
        # (such as records our server decoded) take the tolerant ``_pack_tolerant``.
        self._pack = _record_packer()
        self._queue: deque[Chunk] = deque()  # sealed, not yet prepared
        self._queued_records = 0
        self._backlog: deque[_Out] = deque()  # prepared: resends and spooled frames first
        self._inflight: dict[str, _Out] = {}
        self._busy = 0  # chunks taken by the sender and not yet settled
        self._writing: deque[_Out] = deque()  # in flight, bytes not all written yet
        # Chunk ids: a random prefix per client and a counter, unique without a getrandom()
        # syscall per chunk (each syscall on the sender thread is a GIL hand-over).
        self._id_prefix = os.urandom(8)
        self._id_seq = itertools.count()
        # True while the sender waits with room in flight and nothing to send: only then
        # does a sealed chunk need a wakeup (a wakeup costs a syscall here and a GIL
        # hand-over there; under load the sender wakes for acks anyway).
        self._sender_waiting = True
        self._stopping = False
        self._closed = False
        self._spool = Spool(spool_dir, max_bytes=spool_max_bytes) if spool_dir else None
        if self._spool is not None:
            for entry in self._spool.entries():
                self._backlog.append(_Out(chunk_id=entry.chunk_id, count=entry.count,
                                          parts=None, entry=entry))
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="forward-client", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ public API

    def emit(self, tag: str, record: Any, t: EventTime | float | None = None) -> None:
        """Queue one record. ``t``: EventTime, int nanoseconds or float seconds (default now).

        Raises ``ValueError``/``TypeError`` for a record msgpack cannot encode or one larger
        than ``max_record_bytes`` (in_forward refuses frames over its ``buffer_max_size``,
        6,144,000 bytes by default, so such a record could never be delivered), and
        ``RuntimeError`` after ``close()``.
        """
        # The hot path of the agent: pack outside the lock, then one plain lock (a
        # Condition's ``with`` costs two Python-level calls; the lock is the same one).
        if self._closed:
            raise RuntimeError("emit() on a closed ForwardClient")
        if t is None:
            sec, nsec = divmod(time.time_ns(), 1_000_000_000)
        else:
            sec, nsec = _split_time(t)
            entry_head(sec, nsec)  # range check
        try:
            body = self._pack(record)
        except UnicodeEncodeError:
            body = _pack_tolerant(record)
        if len(body) > self.max_record_bytes:
            raise _too_big(len(body), self.max_record_bytes)
        with self._lock:
            if self._closed:
                raise RuntimeError("emit() on a closed ForwardClient")
            batcher = self._batcher
            if self._queued_records + batcher.pending_records >= self.queue_max_records:
                self._make_room()
            sealed = batcher.add_packed(tag, sec, nsec, body, time.monotonic())
            if sealed:
                for chunk in sealed:
                    self._enqueue(chunk)
            self.stats.emitted += 1

    def emit_many(self, tag: str, entries: Iterable[tuple[EventTime | float | None, Any]]) -> int:
        """Queue ``(t, record)`` pairs under one tag (``t`` as in :meth:`emit`, None for now);
        returns how many were queued.

        Cheaper per record than :meth:`emit` (one lock and one clock read per call). All or
        nothing: every record is packed first, so a record that cannot be sent raises
        ``ValueError``/``TypeError`` (naming its index) before any is queued.
        """
        if self._closed:
            raise RuntimeError("emit_many() on a closed ForwardClient")
        packed: list[tuple[int, int, bytes]] = []
        now_ns = time.time_ns()
        pack, limit = self._pack, self.max_record_bytes
        for i, (t, record) in enumerate(entries):
            try:
                if t is None:
                    sec, nsec = divmod(now_ns, 1_000_000_000)
                else:
                    sec, nsec = _split_time(t)
                    entry_head(sec, nsec)  # range check
                try:
                    body = pack(record)
                except UnicodeEncodeError:
                    body = _pack_tolerant(record)
                if len(body) > limit:
                    raise _too_big(len(body), limit)
            except TypeError as exc:
                raise TypeError(f"entry {i}: {exc}") from exc
            except (ValueError, OverflowError) as exc:
                raise ValueError(f"entry {i}: {exc}") from exc
            packed.append((sec, nsec, body))
        with self._lock:
            if self._closed:
                raise RuntimeError("emit_many() on a closed ForwardClient")
            batcher = self._batcher
            now = time.monotonic()
            for sec, nsec, body in packed:
                if self._queued_records + batcher.pending_records >= self.queue_max_records:
                    self._make_room()
                sealed = batcher.add_packed(tag, sec, nsec, body, now)
                if sealed:
                    for chunk in sealed:
                        self._enqueue(chunk)
            self.stats.emitted += len(packed)
        return len(packed)

    def flush(self, timeout: float | None = None) -> bool:
        """Seal open batches and wait until everything is sent (and acknowledged when acks are
        on). True when done, False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            for chunk in self._batcher.flush():
                self._enqueue(chunk)
            while not self._idle():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining if remaining is not None else 1.0)
        return True

    def close(self, timeout: float | None = 30.0) -> bool:
        """Deliver what is queued (for up to ``timeout`` s), stop the sender, and spool what is
        left when a spool is configured. True when everything was delivered."""
        if self._closed:
            return True
        delivered = self.flush(timeout)
        with self._cond:
            self._closed = True
            self._stopping = True
        self._wake()
        self._thread.join()
        with self._cond:
            leftovers = list(self._inflight.values()) + list(self._backlog)
            self._inflight.clear()
            self._backlog.clear()
            chunks = list(self._queue) + self._batcher.flush()
            self._queue.clear()
            self._queued_records = 0
        self._persist(leftovers, chunks)
        self._wake_r.close()
        self._wake_w.close()
        return delivered

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ queue (lock held)

    def _idle(self) -> bool:
        return not (self._queue or self._backlog or self._inflight or self._busy
                    or self._batcher.pending_records)

    def _make_room(self) -> None:
        while self._queued_records + self._batcher.pending_records >= self.queue_max_records:
            if self.overflow == "drop-oldest":
                if not self._queue:
                    return  # only the open batch is left: bounded by batch_records
                dropped = self._queue.popleft()
                self._queued_records -= dropped.count
                self.stats.dropped_records += dropped.count
                self._batcher.recycle(dropped)
            else:
                if self._stopping:
                    return
                self._cond.wait(1.0)

    def _enqueue(self, chunk: Chunk) -> None:
        self._queue.append(chunk)
        self._queued_records += chunk.count
        if self._sender_waiting:
            self._sender_waiting = False
            self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (the sender will wake anyway) or closed at shutdown

    # ------------------------------------------------------------------ sender thread

    def _run(self) -> None:
        attempt = 0
        while not self._stopping:
            try:
                sock, conn = self._connect()
            except (OSError, ForwardProtocolError) as exc:
                self.stats.connect_failures += 1
                if attempt == 0:
                    log.warning("forward client: cannot connect to %s: %s", self._target(), exc)
                self._spill()
                delay = min(self.backoff_max, self.backoff_base * 2**attempt)
                attempt = min(attempt + 1, 30)
                self._sleep(random.uniform(0, delay))  # full jitter
                continue
            attempt = 0
            self.stats.connects += 1
            try:
                self._pump(sock, conn)
            except (OSError, ForwardProtocolError, _AckTimeout) as exc:
                if isinstance(exc, ForwardProtocolError):
                    self.stats.protocol_errors += 1
                self.stats.disconnects += 1
                log.warning("forward client: connection to %s lost: %s", self._target(), exc)
            finally:
                sock.close()
                self._requeue_inflight()

    def _target(self) -> str:
        return self.unix_path or f"{self.host}:{self.port}"

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping and (left := deadline - time.monotonic()) > 0:
            with self._lock:
                self._sender_waiting = True  # wake me to spill what gets sealed
            select.select([self._wake_r], [], [], left)
            self._drain_wake()
            self._spill()

    def _connect(self) -> tuple[socket.socket, ClientConnection]:
        if self.unix_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.connect_timeout)
            try:
                sock.connect(self.unix_path)
            except OSError:
                sock.close()
                raise
        else:
            sock = socket.create_connection((self.host, self.port), self.connect_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.server_hostname)
            conn = ClientConnection(self.auth, salt=os.urandom(16))
            deadline = time.monotonic() + self.connect_timeout
            while not conn.ready:  # handshake: wait for HELO, answer PING, wait for PONG
                if time.monotonic() > deadline:
                    raise ForwardProtocolError("handshake timed out")
                self._read(sock, conn, max(0.0, deadline - time.monotonic()))
                if out := conn.data_to_send():
                    sock.sendall(out)
        except BaseException:
            sock.close()
            raise
        if isinstance(sock, ssl.SSLSocket):
            sock.settimeout(self.ack_timeout)  # bounds a send to a receiver that stopped reading
        else:
            # Plain sockets are written without blocking from the select() loop (a receiver
            # that stops reading shows as an ack timeout). A socket with a timeout would add
            # a poll() before every send and recv: two GIL hand-overs instead of one, and
            # each hand-over can wait a full switch interval (5 ms) for a busy emitter.
            sock.setblocking(False)
        return sock, conn

    def _read(self, sock: socket.socket, conn: ClientConnection, timeout: float) -> None:
        """Wait up to ``timeout`` for the server, a wakeup or room to write what is pending;
        write what fits and retire acknowledged chunks."""
        pending = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
        if not pending:
            wlist = [sock] if self._writing else []
            readable, writable, _ = select.select([sock, self._wake_r], wlist, [], timeout)
            if self._wake_r in readable:  # every syscall is a GIL hand-over: only when needed
                self._drain_wake()
            if writable:
                self._write(sock)
            if sock not in readable:
                return
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return  # a spurious wakeup of a non-blocking socket
        if not data:
            raise ConnectionError("closed by the receiver")
        conn.receive_data(data)
        while (event := conn.next_event()) is not None:
            if type(event) is Ack:
                self._on_ack(event.chunk)

    def _on_ack(self, chunk: str | bytes) -> None:
        key = chunk.decode("utf-8", "surrogateescape") if isinstance(chunk, bytes) else chunk
        out = self._inflight.pop(key, None)
        if out is None:
            return  # a late ack for a chunk already resent elsewhere
        if out.pending:  # acked before we wrote all of it: not a real ack, keep its buffer
            self._inflight[key] = out
            return
        self._settle(out, acked=True)

    def _settle(self, out: _Out, *, acked: bool) -> None:
        if out.entry is not None and self._spool is not None:
            self._spool.remove(out.entry)
        with self._cond:
            self._busy -= 1
            self._release(out)
            if acked:
                self.stats.acked_chunks += 1
                self.stats.acked_records += out.count
            self._cond.notify_all()

    def _pump(self, sock: socket.socket, conn: ClientConnection) -> None:
        while True:
            now = time.monotonic()
            with self._cond:
                for chunk in self._batcher.due(now):
                    self._enqueue(chunk)
            while len(self._inflight) < self.max_in_flight:
                out = self._take()
                if out is None:
                    break
                self._send(sock, out)
            if self._writing:
                self._write(sock)  # the frames just taken, in one sendmsg
            with self._cond:
                if self._stopping:
                    return
                deadline = self._batcher.next_deadline()
                ready = bool(self._queue or self._backlog)
                # Wake me on the next sealed chunk only when I will wait with nothing to send
                # (with a full pipeline the next ack wakes me anyway).
                self._sender_waiting = not ready
            if ready and len(self._inflight) < self.max_in_flight:
                continue  # sealed while I was sending: no need to wait
            timeout = 0.5 if deadline is None else max(0.0, deadline - time.monotonic())
            if self._inflight:
                oldest = min(o.sent_at for o in self._inflight.values())
                if time.monotonic() - oldest > self.ack_timeout:
                    self.stats.ack_timeouts += 1
                    raise _AckTimeout(f"no ack within {self.ack_timeout} s")
                timeout = min(timeout, oldest + self.ack_timeout - time.monotonic())
            self._read(sock, conn, max(0.0, timeout))

    def _take(self) -> _Out | None:
        with self._cond:
            if self._backlog:
                out = self._backlog.popleft()
            elif self._queue:
                chunk = self._queue.popleft()
                self._queued_records -= chunk.count
                self._cond.notify_all()  # room for blocked emitters
                out = None
            else:
                return None
            self._busy += 1
        return out if out is not None else self._prepare(chunk)

    def _prepare(self, chunk: Chunk) -> _Out:
        raw_id = self._id_prefix + next(self._id_seq).to_bytes(8, "big")
        parts, size = chunk.parts, chunk.size
        owner: Chunk | None = chunk
        if self.compress is not None:
            payload = compress_payload(chunk.payload, self.compress, self.compress_level)
            parts, size = [payload], len(payload)
            with self._lock:
                self._batcher.recycle(chunk)  # the compressed copy is all that is sent
            owner = None
        chunk_id = chunk_id_of(raw_id)
        head, tail = packed_forward_parts(
            chunk.tag, size, size=chunk.count,
            chunk=chunk_id if self.require_ack else None, compressed=self.compress,
        )
        return _Out(chunk_id=chunk_id, count=chunk.count, parts=[head, *parts, tail],
                    raw_id=raw_id, chunk=owner)

    def _release(self, out: _Out) -> None:
        """Give the batch buffer behind ``out`` back (lock held); ``out.parts`` dies with it."""
        if out.chunk is not None:
            self._batcher.recycle(out.chunk)
            out.chunk = None
            out.parts = None

    def _send(self, sock: socket.socket, out: _Out) -> None:
        """Put ``out`` in flight: written at once over TLS, else queued for :meth:`_write`."""
        if out.parts is None:
            assert out.entry is not None
            parts: list[bytes | memoryview] = [Spool.read(out.entry)]
        else:
            parts = out.parts
        if out.entry is not None:
            out.parts = None  # the spool holds it; keep memory bounded
        if out.sent_at:
            self.stats.resent_chunks += 1
        out.sent_at = time.monotonic()
        self._inflight[out.chunk_id] = out  # a failed send requeues it like a missing ack
        if isinstance(sock, ssl.SSLSocket):  # blocking, bounded by the socket timeout
            sock.sendall(b"".join(parts))
            self._written(out)
        else:
            out.pending = [part for part in parts if len(part)]
            self._writing.append(out)

    def _write(self, sock: socket.socket) -> None:
        """Write as much of the pending frames as the socket takes now: one ``sendmsg`` for
        all of them (scatter-gather: payloads are never copied or joined)."""
        writing = self._writing
        bufs = [buf for out in writing for buf in out.pending][:_IOV_MAX]
        try:
            sent = sock.sendmsg(bufs)
        except (BlockingIOError, InterruptedError):
            return
        while writing:
            out = writing[0]
            pending = out.pending
            while pending:
                size = len(pending[0])
                if sent < size:  # partial write: resume inside this buffer next time
                    if sent:
                        pending[0] = memoryview(pending[0])[sent:]
                    return
                sent -= size
                del pending[0]
            writing.popleft()
            self._written(out)

    def _written(self, out: _Out) -> None:
        self.stats.sent_chunks += 1
        self.stats.sent_records += out.count
        if not self.require_ack:  # nothing to wait for: the kernel has the bytes
            del self._inflight[out.chunk_id]
            self._settle(out, acked=False)

    def _requeue_inflight(self) -> None:
        """Put unacknowledged frames back in front of the backlog, oldest first."""
        for out in self._writing:
            out.pending = []
        self._writing.clear()
        with self._cond:
            outs = sorted(self._inflight.values(), key=lambda o: o.sent_at)
            self._inflight.clear()
            self._busy -= len(outs)
            self._backlog.extendleft(reversed(outs))

    def _spill(self) -> None:
        """Receiver unreachable: move sealed batches to the spool so emitters never block."""
        if self._spool is None:
            return
        while True:
            with self._cond:
                if not self._queue:
                    return
                if self.overflow == "block" and not self._spool.has_room(
                    self._queue[0].size
                ):
                    return  # spool full: leave the queue full so emit() blocks
                chunk = self._queue.popleft()
                self._queued_records -= chunk.count
                self._busy += 1
                self._cond.notify_all()
            out = self._prepare(chunk)
            self._to_spool(out)
            with self._cond:
                self._busy -= 1
                if out.entry is not None:
                    self._backlog.append(out)

    def _to_spool(self, out: _Out) -> None:
        assert self._spool is not None and out.parts is not None
        frame = b"".join(out.parts)
        while not self._spool.has_room(len(frame)):
            if self.overflow != "drop-oldest" or (old := self._spool.pop_oldest()) is None:
                with self._lock:
                    self.stats.dropped_records += out.count
                    self._release(out)
                log.warning("forward client: spool full, dropped %d records", out.count)
                return
            with self._lock:  # forget the dropped frame's backlog entry too
                self.stats.dropped_records += old.count
                self._backlog = deque(o for o in self._backlog if o.entry != old)
        out.entry = self._spool.put(out.raw_id, out.count, frame)
        with self._lock:
            self._release(out)
        out.parts = None
        self.stats.spooled_chunks += 1

    def _persist(self, outs: list[_Out], chunks: list[Chunk]) -> None:
        """At close: write what was not delivered to the spool (or count it as dropped)."""
        lost = 0
        for out in outs:
            if out.entry is None:
                if self._spool is None:
                    lost += out.count
                else:
                    self._to_spool(out)
        for chunk in chunks:
            if self._spool is None:
                lost += chunk.count
            else:
                self._to_spool(self._prepare(chunk))
        if lost:
            self.stats.dropped_records += lost
            log.warning("forward client: closed with %d undelivered records", lost)

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass


#: sendmsg() takes at most IOV_MAX buffers (1024 on Linux).
_IOV_MAX = 1024


def _record_packer() -> Callable[[Any], bytes]:
    """A strict record packer any emitting thread may call without the client's lock."""
    shared = shared_record_packer()
    if shared is not None:
        return shared
    local = threading.local()  # msgpack's Packer keeps its buffer between calls: one per thread

    def pack(record: Any) -> bytes:
        try:
            packer: Callable[[Any], bytes] = local.pack
        except AttributeError:
            packer = local.pack = msgpack.Packer(use_bin_type=True).pack
        return packer(record)

    return pack


def _pack_tolerant(record: Any) -> bytes:
    """Pack a record whose strs hold surrogate-escaped bytes back into those bytes."""
    body: bytes = msgpack.packb(record, use_bin_type=True, unicode_errors="surrogateescape")
    return body


def _too_big(size: int, limit: int) -> ValueError:
    return ValueError(f"record of {size} bytes exceeds max_record_bytes ({limit}): "
                      "a receiver would refuse it forever")


class _AckTimeout(Exception):
    """Internal: the receiver did not acknowledge in time (the connection is reset)."""


def _split_time(t: EventTime | float | tuple[int, int]) -> tuple[int, int]:
    if isinstance(t, tuple):  # EventTime or (seconds, nanoseconds)
        return int(t[0]), int(t[1])
    if isinstance(t, int):  # integer nanoseconds since the epoch
        return divmod(t, 1_000_000_000)
    if isinstance(t, float):
        return divmod(int(t * 1e9), 1_000_000_000)
    raise TypeError(f"unsupported time {t!r}")
