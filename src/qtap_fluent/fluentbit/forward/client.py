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
  socket (``unix_path=``). Sockets never block: a background I/O thread connects, waits in
  select() for acks, room to write and timeouts, and reconnects; the thread that seals a
  batch writes it itself (reads the acks that arrived, fills the pipeline, one ``sendmsg``
  for several frames), under the client's lock. Handing each chunk to the I/O thread instead
  cost a GIL hand-over per syscall there, each up to a switch interval (5 ms) while the
  emitting thread keeps the GIL busy.
* **Batching**: records are encoded on the caller's thread (msgspec's ``encode_into`` when
  installed, else msgpack) straight into one open batch per tag and sealed by count
  (``batch_records``), size (``batch_bytes``) or age (``batch_age`` seconds) into
  PackedForward frames, optionally ``compress="gzip"`` (ISA-L when installed) or ``"zstd"``
  (Fluent Bit ≥ 4.1 in_forward and our server accept it). A batch is sent from the buffer
  its records were encoded into (no copy).
* **Acks** (``require_ack``, on by default): every frame carries a 128-bit ``chunk`` id
  (Base64: a random per-client prefix and a counter); up to ``max_in_flight`` frames are on
  the wire at once (pipelining). While sealed frames wait for that window, the emitting
  thread looks for acks every 0.5 ms (the I/O thread, woken by an ack, may wait a whole GIL
  switch interval for its turn); ``stats.window_full`` counts how often the window filled.
  A frame not acknowledged within ``ack_timeout`` seconds, or in flight when the connection
  drops, is sent again: delivery is at-least-once and a receiver may see duplicates.
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
* **Memory**: each batch is a fresh buffer, freed once its frame is acknowledged; a program
  whose main job is shipping records can call :func:`.memory.retain_freed_memory` once at
  start so glibc keeps those blocks instead of faulting them in again (~10% less CPU per
  record measured; it changes malloc for the whole process, so the client never does it).
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
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Self

from .batcher import (
    ENTRY_HEAD,
    Batcher,
    Chunk,
    append_record,
    check_time,
    default_encode_into,
    entry_head,
    too_big,
)
from .connection import ClientConnection
from .encode import compress as compress_payload
from .encode import packed_forward_parts
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
    #: times sealed chunks had to wait because ``max_in_flight`` frames were unacknowledged
    #: (often: the receiver is the bottleneck, or acks come back late)
    window_full: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


_Part = bytes | bytearray | memoryview


@dataclass(slots=True)
class _Out:
    """A frame ready to send: in memory (``parts``) and/or on disk (``entry``)."""

    chunk_id: str
    count: int
    parts: list[_Part] | None
    entry: SpoolEntry | None = None
    raw_id: bytes = b""  #: the 16 random bytes behind chunk_id (names the spool file)
    sent_at: float = 0.0
    pending: list[_Part] = field(default_factory=list)  #: not yet written


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
        self._second = (0, 0)  #: (seconds, the same in ns) of the last emit() without a time

        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._batcher = Batcher(max_records=batch_records, max_bytes=batch_bytes,
                                max_age=batch_age, max_record_bytes=max_record_bytes)
        # emit_many() encodes outside the lock. Strict UTF-8 is the fast path (a tolerant
        # packer re-encodes every str, ~3x slower on text-heavy records); surrogate-escaped
        # strs (such as records our server decoded) take the tolerant path (``append_record``).
        self._encode_into = default_encode_into()
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
        # True while the I/O thread waits for the receiver to come back: only then does a
        # sealed chunk need a wakeup (to be spilled to the spool); while connected, the
        # thread that seals a chunk sends it.
        self._sender_waiting = True
        # While sealed chunks wait for the window (max_in_flight frames unacknowledged), an
        # emitting thread looks for acks every _ACK_POLL s instead of only when it seals the
        # next chunk: the I/O thread, woken by the ack, may wait up to the GIL's switch
        # interval (5 ms) while an emitter keeps the GIL busy, and the receiver idles once it
        # has worked through what is in flight.
        self._poll_at = _NEVER
        self._inline_at = -_NEVER  #: when an emitting thread last did the socket work
        # The connection, while one is up: any thread holding the lock may do socket work
        # on it (:meth:`_service`); only the I/O thread connects, waits and closes.
        self._sock: socket.socket | None = None
        self._conn: ClientConnection | None = None
        self._tls = ssl_context is not None
        self._io_error: BaseException | None = None  #: found by an emitting thread
        self._watching_writes = False  #: the I/O thread's select() waits for room to write
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
        ``RuntimeError`` once ``close()`` has begun (the record was not accepted).
        """
        # The hot path of the agent: the record is encoded straight into its batch's buffer
        # under one plain lock (a Condition's ``with`` costs two Python-level calls; the lock
        # is the same one). Splitting time_ns() with divmod cost ~0.25 us (a two-digit int
        # division); the second is cached instead and only the nanoseconds are subtracted.
        if t is None:
            ns = _time_ns()
            sec, sec_ns = self._second
            nsec = ns - sec_ns
            if not 0 <= nsec < 1_000_000_000:
                sec, nsec = divmod(ns, 1_000_000_000)
                self._second = (sec, ns - nsec)  # one tuple: threads never see half of it
        else:
            sec, nsec = _split_time(t)
            check_time(sec, nsec)
        with self._lock:
            if self._closed:
                raise RuntimeError("emit() on a closed ForwardClient")
            batcher = self._batcher
            if self._queued_records + batcher.pending_records >= self.queue_max_records:
                self._make_room()
            now = _monotonic()
            sealed = batcher.add_record(tag, sec, nsec, record, now)
            if sealed:
                for chunk in sealed:
                    self._enqueue(chunk)
            elif now >= self._poll_at:  # chunks wait for acks: look for them now
                self._poll()
            self.stats.emitted += 1

    def emit_many(self, tag: str, entries: Iterable[tuple[EventTime | float | None, Any]]) -> int:
        """Queue ``(t, record)`` pairs under one tag (``t`` as in :meth:`emit`, None for now);
        returns how many were queued.

        Cheaper per record than :meth:`emit` (one lock and one clock read per call, runs of
        records copied into their batch with one slice; 2.7 against 3.6 us measured). All or
        nothing: every record is packed first, so a record that cannot be sent raises
        ``ValueError``/``TypeError`` (naming its index) before any is queued. When ``close()``
        interrupts a call waiting for room, the RuntimeError says how many were queued.
        """
        if self._closed:
            raise RuntimeError("emit_many() on a closed ForwardClient")
        # Every entry is encoded first, appended to one scratch buffer (in place, like emit),
        # so a bad record refuses the whole call; then they are copied in under the lock, a
        # run of entries per slice (Batcher.add_entries). Entries without a time all get the
        # one read at the start of the call: its head is packed once.
        scratch = bytearray()
        bounds = [0]  # entry k is scratch[bounds[k]:bounds[k + 1]]
        now_head = entry_head(*divmod(_time_ns(), 1_000_000_000))
        encode_into, limit = self._encode_into, self.max_record_bytes
        for i, (t, record) in enumerate(entries):
            start = bounds[-1]
            try:
                scratch += now_head if t is None else entry_head(*_split_time(t))
                append_record(scratch, record, encode_into)
                end = len(scratch)
                if end - start - _HEAD_LEN > limit:
                    raise too_big(end - start - _HEAD_LEN, limit)
            except TypeError as exc:
                raise TypeError(f"entry {i}: {exc}") from exc
            except (ValueError, OverflowError) as exc:
                raise ValueError(f"entry {i}: {exc}") from exc
            bounds.append(end)
        n = len(bounds) - 1
        with self._lock, memoryview(scratch) as view:
            if self._closed:
                raise RuntimeError("emit_many() on a closed ForwardClient")
            batcher = self._batcher
            now = _monotonic()
            i = 0
            while i < n:
                if self._queued_records + batcher.pending_records >= self.queue_max_records:
                    try:
                        self._make_room()
                    except RuntimeError:
                        self.stats.emitted += i
                        raise RuntimeError(
                            f"emit_many() interrupted by close(): the first {i} of "
                            f"{n} records were queued (and are delivered)") from None
                # As many as the queue has room for (one at least: with "drop-oldest" and
                # nothing left to drop, the open batch is the bound, as in emit()).
                room = self.queue_max_records - self._queued_records - batcher.pending_records
                stop = min(n, i + max(1, room))
                for chunk in batcher.add_entries(tag, view, bounds, i, stop, now):
                    self._enqueue(chunk)
                i = stop
            if _monotonic() >= self._poll_at:
                self._poll()
            self.stats.emitted += n
        return n

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
        with self._cond:
            if self._closed:
                return True
            # Refuse new records first, then deliver: a record is accepted (emit returned)
            # only while the lock is held and _closed is false, so flush() below sees every
            # accepted record. Emitters waiting for room wake up and raise RuntimeError.
            self._closed = True
            self._cond.notify_all()
        delivered = self.flush(timeout)
        with self._cond:
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
            else:
                self._cond.wait(1.0)
                if self._closed:  # close() began while we waited: this record is refused
                    raise RuntimeError("emit() on a closed ForwardClient")

    def _enqueue(self, chunk: Chunk) -> None:
        """Queue a sealed chunk and, when connected, put it on the wire from this thread."""
        self._queue.append(chunk)
        self._queued_records += chunk.count
        if self._sock is not None:
            # The emitting thread does the socket work itself: handing every chunk to the I/O
            # thread cost a GIL hand-over per syscall there, each up to a switch interval
            # (5 ms) while this thread keeps the GIL busy encoding.
            self._service_inline()
        elif self._sender_waiting:
            self._sender_waiting = False
            self._wake()

    def _service_inline(self) -> None:
        """:meth:`_service` from an emitting thread: never raises; a broken connection is
        left to the I/O thread (which requeues what is in flight and reconnects)."""
        self._inline_at = _monotonic()
        try:
            self._service()
        except (OSError, ForwardProtocolError) as exc:
            self._sock = None  # no more inline I/O until the I/O thread has reconnected
            self._io_error = exc
            self._wake()
            return
        if self._writing and not self._watching_writes:
            self._wake()  # the rest is written when the socket has room

    def _poll(self) -> None:
        """From an emitting thread while chunks wait for the window: read the acks that
        arrived and send what they make room for."""
        if self._sock is None:
            self._poll_at = _NEVER  # disconnected: the I/O thread takes over
            return
        self._service_inline()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (the sender will wake anyway) or closed at shutdown

    # ------------------------------------------------------------------ I/O thread

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
                with self._lock:
                    self._sock = self._conn = None
                    self._io_error = None
                    self._requeue_inflight()
                sock.close()

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
            # Never block in a socket call from here on (select() waits, and wakes for
            # close()). A socket with a timeout would also add a poll() before every send and
            # recv. A TLS socket with a timeout blocked in recv() whenever select() saw a
            # record that carries no data (TLS 1.3 session tickets arrive right after the
            # handshake): the sender then sat out ack_timeout, and close() waited for it.
            sock.setblocking(False)
            conn = ClientConnection(self.auth, salt=os.urandom(16))
            deadline = time.monotonic() + self.connect_timeout
            while not conn.ready:  # handshake: wait for HELO, answer PING, wait for PONG
                left = deadline - time.monotonic()
                if left <= 0 or self._stopping:
                    raise ForwardProtocolError("handshake timed out")
                readable, _, _ = select.select([sock, self._wake_r], [], [], left)
                if self._wake_r in readable:
                    self._drain_wake()
                if sock in readable or (isinstance(sock, ssl.SSLSocket) and sock.pending()):
                    self._receive(sock, conn)
                if out := conn.data_to_send():
                    self._sendall(sock, out, max(0.0, deadline - time.monotonic()))
        except BaseException:
            sock.close()
            raise
        return sock, conn

    def _sendall(self, sock: socket.socket, data: bytes, timeout: float) -> None:
        """Write all of the (small) handshake message ``data`` to the non-blocking ``sock``,
        waiting at most ``timeout`` s for the receiver to take it."""
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        while view:
            try:
                # A TLS write that wants to wait is retried with the same buffer (OpenSSL
                # requires it); it never reports a partial write.
                view = view[sock.send(view):]
                continue
            except (BlockingIOError, ssl.SSLWantWriteError):
                rlist, wlist = [self._wake_r], [sock]
            except ssl.SSLWantReadError:  # TLS may need to read (a key update) to write
                rlist, wlist = [sock, self._wake_r], []
            left = deadline - time.monotonic()
            if left <= 0 or self._stopping:
                raise TimeoutError(f"the receiver took no data for {timeout} s")
            readable, _, _ = select.select(rlist, wlist, [], left)
            if self._wake_r in readable:
                self._drain_wake()

    def _pump(self, sock: socket.socket, conn: ClientConnection) -> None:
        """Serve one connection until it fails or the client stops."""
        with self._lock:
            self._sock, self._conn = sock, conn  # emitting threads may write now
        wake = self._wake_r
        while True:
            with self._cond:
                if self._stopping:
                    return
                if self._io_error is not None:  # an emitting thread found it broken
                    raise self._io_error
                now = time.monotonic()
                for chunk in self._batcher.due(now):
                    self._queue.append(chunk)
                    self._queued_records += chunk.count
                self._service()
                deadline = self._batcher.next_deadline()
                timeout = 0.5 if deadline is None else max(0.0, deadline - now)
                if self._inflight:
                    oldest = min(o.sent_at for o in self._inflight.values())
                    if now - oldest > self.ack_timeout:
                        self.stats.ack_timeouts += 1
                        raise _AckTimeout(f"no ack within {self.ack_timeout} s")
                    timeout = min(timeout, oldest + self.ack_timeout - now)
                self._watching_writes = bool(self._writing)
                wlist = [sock] if self._writing else []
                # While an emitting thread does the socket work (it reads acks whenever it
                # seals a chunk, and polls while chunks wait for the window), this thread
                # does not wake for every ack: each wake-up is a GIL hand-over that stops the
                # emitter. It looks again every _QUIET_IO s and watches the socket once the
                # emitters went quiet.
                quiet = now - self._inline_at < _QUIET_IO
                if quiet:
                    timeout = min(timeout, _QUIET_IO)
            if isinstance(sock, ssl.SSLSocket) and sock.pending():
                continue  # decrypted bytes wait in the TLS layer: select() cannot see them
            rlist = [wake] if quiet else [sock, wake]
            readable, _, _ = select.select(rlist, wlist, [], max(0.0, timeout))
            if wake in readable:  # every syscall is a GIL hand-over: only when needed
                self._drain_wake()

    # ------------------------------------------------------------------ socket work (lock held)

    def _service(self) -> None:
        """Read the acks that arrived, fill the pipeline, write what the socket takes. All
        non-blocking; called with the lock held by the I/O thread or an emitting thread."""
        sock, conn = self._sock, self._conn
        assert sock is not None and conn is not None
        self._receive(sock, conn)
        inflight, max_in_flight = self._inflight, self.max_in_flight
        while len(inflight) < max_in_flight and (self._backlog or self._queue):
            self._send(self._take())
        if self._writing:
            self._write(sock)
        if self._queue or self._backlog:  # the window is full: acks are awaited
            if self._poll_at == _NEVER:
                self.stats.window_full += 1
            self._poll_at = time.monotonic() + _ACK_POLL
        else:
            self._poll_at = _NEVER

    def _receive(self, sock: socket.socket, conn: ClientConnection) -> None:
        """Read what the receiver sent (until the socket would block) and retire acks."""
        while True:
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError,
                    ssl.SSLWantWriteError):
                return  # nothing (more) to read, or a TLS record without data
            if not data:
                raise ConnectionError("closed by the receiver")
            conn.receive_data(data)
            while (event := conn.next_event()) is not None:
                if type(event) is Ack:
                    self._on_ack(event.chunk)
            if len(data) < 65536 and not isinstance(sock, ssl.SSLSocket):
                return  # drained: spare the syscall that would say so

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
        self._busy -= 1
        self._release(out)
        if acked:
            self.stats.acked_chunks += 1
            self.stats.acked_records += out.count
        self._cond.notify_all()

    def _take(self) -> _Out:
        """The next frame to send (the backlog first); the caller saw one waiting."""
        self._busy += 1
        if self._backlog:
            return self._backlog.popleft()
        chunk = self._queue.popleft()
        self._queued_records -= chunk.count
        self._cond.notify_all()  # room for blocked emitters
        return self._prepare(chunk)

    def _prepare(self, chunk: Chunk) -> _Out:
        raw_id = self._id_prefix + next(self._id_seq).to_bytes(8, "big")
        parts, size = chunk.parts, chunk.size
        if self.compress is not None:
            payload = compress_payload(chunk.payload, self.compress, self.compress_level)
            parts, size = [payload], len(payload)
        chunk_id = chunk_id_of(raw_id)
        head, tail = packed_forward_parts(
            chunk.tag, size, size=chunk.count,
            chunk=chunk_id if self.require_ack else None, compressed=self.compress,
        )
        return _Out(chunk_id=chunk_id, count=chunk.count, parts=[head, *parts, tail],
                    raw_id=raw_id)

    @staticmethod
    def _release(out: _Out) -> None:
        """Drop the frame's bytes: they are delivered, spooled or dropped."""
        out.parts = None

    def _send(self, out: _Out) -> None:
        """Put ``out`` in flight: queued for :meth:`_write`."""
        if out.parts is None:
            assert out.entry is not None
            parts: list[_Part] = [Spool.read(out.entry)]
        else:
            parts = out.parts
        if out.entry is not None:
            out.parts = None  # the spool holds it; keep memory bounded
        if out.sent_at:
            self.stats.resent_chunks += 1
        out.sent_at = time.monotonic()
        self._inflight[out.chunk_id] = out  # a failed send requeues it like a missing ack
        if self._tls:
            out.pending = [b"".join(parts)]  # no sendmsg() on TLS: one write per frame
        else:
            out.pending = [part for part in parts if len(part)]
        self._writing.append(out)

    def _write(self, sock: socket.socket) -> None:
        """Write as much of the pending frames as the socket takes now: one ``sendmsg`` for
        all of them (scatter-gather: payloads are never copied or joined)."""
        writing = self._writing
        if self._tls:
            while writing:
                out = writing[0]
                try:
                    # All of it or SSLWantWriteError; a retry passes the same buffer.
                    sent = sock.send(out.pending[0])
                except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError,
                        ssl.SSLWantReadError):
                    return
                if sent < len(out.pending[0]):  # not expected from OpenSSL; handled anyway
                    out.pending[0] = memoryview(out.pending[0])[sent:]
                    continue
                out.pending.clear()
                writing.popleft()
                self._written(out)
            return
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
                self._cond.notify_all()
                out = self._prepare(chunk)
                self._to_spool(out)
                if out.entry is not None:
                    self._backlog.append(out)

    def _to_spool(self, out: _Out) -> None:
        """Write ``out`` to the spool (lock held), or drop it (counted) when it is full."""
        assert self._spool is not None and out.parts is not None
        frame = b"".join(out.parts)
        while not self._spool.has_room(len(frame)):
            if self.overflow != "drop-oldest" or (old := self._spool.pop_oldest()) is None:
                self.stats.dropped_records += out.count
                self._release(out)
                log.warning("forward client: spool full, dropped %d records", out.count)
                return
            self.stats.dropped_records += old.count  # forget the dropped frame's entry too
            self._backlog = deque(o for o in self._backlog if o.entry != old)
        out.entry = self._spool.put(out.raw_id, out.count, frame)
        self._release(out)
        out.parts = None
        self.stats.spooled_chunks += 1

    def _persist(self, outs: list[_Out], chunks: list[Chunk]) -> None:
        """At close: write what was not delivered to the spool (or count it as dropped)."""
        lost = 0
        with self._lock:
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
        if lost:
            log.warning("forward client: closed with %d undelivered records", lost)

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass


_HEAD_LEN = ENTRY_HEAD.size

#: sendmsg() takes at most IOV_MAX buffers (1024 on Linux).
_IOV_MAX = 1024


#: How often an emitting thread looks for acks while sealed chunks wait for the window.
_ACK_POLL = 0.0005
_NEVER = float("inf")
#: How long the I/O thread leaves reading acks to active emitting threads.
_QUIET_IO = 0.02

_time_ns = time.time_ns
_monotonic = time.monotonic


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
