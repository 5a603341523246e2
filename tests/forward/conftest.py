"""Fixtures: a real ForwardServer on 127.0.0.1 in a background event loop, TLS material."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trustme

from qtap_fluent.fluentbit.forward.events import Entry
from qtap_fluent.fluentbit.forward.server import ForwardServer


class ServerThread:
    """A ForwardServer running in its own thread; ``entries`` collects accepted records.

    ``accept`` decides per batch whether the consumer accepts it (default: always).
    """

    def __init__(self, **kwargs: Any) -> None:
        self.entries: list[Entry] = []
        self.batches = 0
        self.accept: Callable[[list[Entry]], bool] = lambda batch: True
        self.loop = asyncio.new_event_loop()
        kwargs.setdefault("port", 0)
        self.server = ForwardServer(self._consume, **kwargs)
        self.loop.run_until_complete(self.server.start())
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def _consume(self, batch: list[Entry]) -> bool:
        self.batches += 1
        if not self.accept(batch):
            return False
        self.entries.extend(batch)
        return True

    @property
    def host(self) -> str:
        addr = self.server.address
        assert isinstance(addr, tuple)
        return addr[0]

    @property
    def port(self) -> int:
        addr = self.server.address
        assert isinstance(addr, tuple)
        return addr[1]

    def wait_for(self, n: int, timeout: float = 20.0) -> list[Entry]:
        deadline = time.monotonic() + timeout
        while len(self.entries) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.entries

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def make_server() -> Iterator[Callable[..., ServerThread]]:
    servers: list[ServerThread] = []

    def make(**kwargs: Any) -> ServerThread:
        srv = ServerThread(**kwargs)
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()


@pytest.fixture
def server(make_server: Callable[..., ServerThread]) -> ServerThread:
    return make_server()


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_ssl(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return ctx


@pytest.fixture(scope="session")
def client_ssl(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def recv_until_closed(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the peer sends until it closes (or ``timeout`` passes)."""
    sock.settimeout(timeout)
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return out
