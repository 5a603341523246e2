"""An asyncio forward-protocol server: what ``qtap-fluent serve`` listens with.

It accepts all four carrier modes from any peer (Fluent Bit's forward output, Fluentd,
fluent-logger, our own client), gzip and zstd payloads, Fluent Bit's metadata entries, the
shared-key/user handshake and TLS, and hands records to one consumer coroutine::

    async def consumer(batch: list[Entry]) -> bool:
        for tag, time, record, metadata in batch:   # time is EventTime(seconds, nanoseconds)
            ...
        return True          # accepted: acks go out now. False/exception: no ack, peer retries

    server = ForwardServer(consumer, host="127.0.0.1", port=24224,
                           auth=ServerAuth(shared_key="k", users={"u": "p"}), ssl=ctx)
    await server.start()
    ...
    await server.close()     # stops accepting, lets running consumer calls finish and ack

Guarantees:

* An ack (``{"ack": chunk}``) is written only after the consumer returned ``True`` for a batch
  holding that chunk; every ack, HELO and PONG goes out in a single write (Fluent Bit's
  out_forward reads each reply with one ``read()`` and fails on a partial map).
* When the consumer refuses, the connection is closed without acks so the peer resends.
* A malformed or hostile stream (bad msgpack, a frame, payload or decompressed payload over
  the limits, a failed handshake) closes only that connection, with one log line.
* Batches merge requests that are already decoded (up to ``max_batch_records``), so
  Message-mode peers such as fluent-logger do not cost one consumer call per record.
* Reading pauses while more than ``2 * limits.max_frame`` bytes wait to be decoded.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl as _ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from typing import Any

from .codec import DEFAULT_LIMITS, Limits
from .connection import ServerConnection
from .encode import encode_ack
from .events import EntriesReceived, Entry, ForwardProtocolError
from .handshake import PingVerdict, ServerAuth

log = logging.getLogger("qtap_fluent.forward.server")

Consumer = Callable[[list[Entry]], Awaitable[bool]]


@dataclass(slots=True)
class ServerStats:
    """Counters of one server since start (a snapshot is returned by ``ForwardServer.stats``)."""

    connections: int = 0
    open_connections: int = 0
    requests: int = 0
    records: int = 0
    bytes: int = 0
    acks: int = 0
    protocol_errors: int = 0
    auth_failures: int = 0
    rejected_batches: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def tls_server_context(
    certfile: str, keyfile: str | None = None, *, cafile: str | None = None,
    verify_client: bool = False,
) -> _ssl.SSLContext:
    """A server TLS context from PEM files (Fluent Bit's ``tls.crt_file``/``tls.key_file``);
    ``verify_client`` with ``cafile`` requires client certificates (``tls.verify_client_cert``)."""
    ctx = _ssl.create_default_context(_ssl.Purpose.CLIENT_AUTH, cafile=cafile)
    ctx.load_cert_chain(certfile, keyfile)
    if verify_client:
        ctx.verify_mode = _ssl.CERT_REQUIRED
    return ctx


class ForwardServer:
    """Listen on TCP (optionally TLS) or a unix socket and feed a consumer coroutine."""

    def __init__(
        self,
        consumer: Consumer,
        *,
        host: str = "127.0.0.1",
        port: int = 24224,
        unix_path: str | None = None,
        ssl: _ssl.SSLContext | None = None,
        limits: Limits = DEFAULT_LIMITS,
        auth: ServerAuth | None = None,
        max_batch_records: int = 10_000,
    ) -> None:
        self.consumer = consumer
        self.host, self.port, self.unix_path = host, port, unix_path
        self.ssl = ssl
        self.limits = limits
        self.auth = auth
        self.max_batch_records = max_batch_records
        self._stats = ServerStats()
        self._server: asyncio.Server | None = None
        self._conns: set[_Conn] = set()

    @property
    def stats(self) -> ServerStats:
        """Live counters."""
        return self._stats

    @property
    def address(self) -> tuple[str, int] | str:
        """Where the server listens: ``(host, port)`` (real port if 0 was asked) or the path."""
        if self.unix_path is not None:
            return self.unix_path
        assert self._server is not None, "start() first"
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    async def start(self) -> None:
        """Bind and start accepting connections."""
        loop = asyncio.get_running_loop()
        if self.unix_path is not None:
            self._server = await loop.create_unix_server(
                lambda: _Conn(self), self.unix_path, ssl=self.ssl
            )
        else:
            self._server = await loop.create_server(
                lambda: _Conn(self), self.host, self.port, ssl=self.ssl, reuse_address=True
            )

    async def serve_forever(self) -> None:
        """Start (if needed) and serve until cancelled."""
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def close(self) -> None:
        """Stop accepting; finish running consumer calls (and their acks); close connections."""
        if self._server is not None:
            self._server.close()
        conns = list(self._conns)
        for conn in conns:
            conn.shutdown()
        await asyncio.gather(*(c.task for c in conns if c.task is not None), return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None


class _Conn(asyncio.Protocol):
    """One accepted connection: the protocol callbacks feed a decoder, one task consumes it."""

    def __init__(self, server: ForwardServer) -> None:
        self.server = server
        auth = server.auth
        self.proto = ServerConnection(
            server.limits, auth,
            nonce=os.urandom(16) if auth else b"",
            user_salt=os.urandom(16) if auth and auth.users else b"",
        )
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None
        self.peer = "?"
        self._wakeup = asyncio.Event()
        self._unread = 0  # bytes received and not yet handed to the decoder loop
        self._paused = False
        self._closing = False
        self._eof = False

    # -- protocol callbacks (event loop) -----------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.peer = _peer_name(transport)
        self.server._conns.add(self)
        stats = self.server._stats
        stats.connections += 1
        stats.open_connections += 1
        self.task = asyncio.get_running_loop().create_task(self._run())

    def data_received(self, data: bytes) -> None:
        self.proto.receive_data(data)
        self._unread += len(data)
        self.server._stats.bytes += len(data)
        if self._unread > 2 * self.server.limits.max_frame and not self._paused:
            assert self.transport is not None
            self.transport.pause_reading()
            self._paused = True
        self._wakeup.set()

    def eof_received(self) -> bool | None:
        self._eof = True
        self.proto.receive_data(b"")
        self._wakeup.set()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._closing = True
        self._wakeup.set()
        self.server._conns.discard(self)
        self.server._stats.open_connections -= 1

    def shutdown(self) -> None:
        self._closing = True
        self._wakeup.set()

    # -- the connection task -------------------------------------------------------------

    async def _run(self) -> None:
        assert self.transport is not None
        try:
            greeting = self.proto.greeting()
            if greeting:
                self.transport.write(greeting)
            while not self._closing and await self._step():
                pass
        except ForwardProtocolError as exc:
            self.server._stats.protocol_errors += 1
            log.warning("forward: closing connection from %s: %s", self.peer, exc)
        except _ConsumerRefused as exc:
            self.server._stats.rejected_batches += 1
            log.warning("forward: consumer refused a batch from %s, not acked: %s", self.peer, exc)
        finally:
            self.transport.close()

    async def _step(self) -> bool:
        """Handle what is decodable now; wait for data when nothing is. False: done."""
        batch: list[Entry] = []
        acks: list[bytes] = []
        max_records = self.server.max_batch_records
        while len(batch) < max_records:
            event = self.proto.next_event()
            if event is None:
                break
            if type(event) is EntriesReceived:
                batch += event.entries
                if event.chunk is not None:
                    acks.append(encode_ack(event.chunk))
                self.server._stats.requests += 1
            elif type(event) is PingVerdict and not self._on_verdict(event):
                return False
        if batch:
            await self._deliver(batch, acks)
            return True
        if self._eof:
            return False
        self._unread = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        self._wakeup.clear()
        await self._wakeup.wait()
        return True

    def _on_verdict(self, verdict: PingVerdict) -> bool:
        assert self.transport is not None
        if verdict.pong:
            self.transport.write(verdict.pong)
        if not verdict.ok:
            self.server._stats.auth_failures += 1
            log.warning("forward: handshake from %s failed: %s", self.peer, verdict.reason)
        return verdict.ok

    async def _deliver(self, batch: list[Entry], acks: list[bytes]) -> None:
        try:
            accepted = await self.server.consumer(batch)
        except Exception as exc:  # the consumer is user code: any failure means "not accepted"
            raise _ConsumerRefused(f"{type(exc).__name__}: {exc}") from exc
        if not accepted:
            raise _ConsumerRefused("consumer returned False")
        self.server._stats.records += len(batch)
        if acks and self.transport is not None and not self.transport.is_closing():
            # Each ack is a complete map; several acks may share one write.
            self.server._stats.acks += len(acks)
            self.transport.write(b"".join(acks))


class _ConsumerRefused(Exception):
    """Internal: the consumer did not accept a batch (never escapes this module)."""


def _peer_name(transport: asyncio.BaseTransport) -> str:
    peer: Any = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer or "unix socket")
