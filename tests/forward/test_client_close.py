"""close() keeps the client's promise: every record an emit accepted is delivered (or spooled,
or counted as dropped when close() gives up); an emit that loses the race against close()
raises RuntimeError; and close() after everything was acknowledged returns at once."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qtap_fluent.fluentbit.forward.client import ForwardClient
from qtap_fluent.fluentbit.forward.connection import ServerConnection
from qtap_fluent.fluentbit.forward.events import EntriesReceived

from .conftest import ServerThread, free_port


class Emitter(threading.Thread):
    """Emits ``{"i": base + k}`` until an emit raises; ``accepted`` holds those that returned."""

    def __init__(self, client: ForwardClient, base: int, many: int = 0) -> None:
        super().__init__(daemon=True)
        self.client, self.base, self.many = client, base, many
        self.accepted: list[int] = []
        self.error: BaseException | None = None
        self.started = threading.Event()

    def run(self) -> None:
        i = self.base
        try:
            while True:
                if self.many:
                    batch = [(None, {"i": j}) for j in range(i, i + self.many)]
                    try:
                        self.client.emit_many("t", batch)
                    except RuntimeError as exc:
                        # interrupted by close(): the message says how many were queued
                        queued = int(str(exc).split("the first ")[1].split()[0]) if (
                            "the first" in str(exc)) else 0
                        self.accepted += range(i, i + queued)
                        raise
                    self.accepted += range(i, i + self.many)
                    i += self.many
                else:
                    self.client.emit("t", {"i": i})
                    self.accepted.append(i)
                    i += 1
                if len(self.accepted) >= 200:
                    self.started.set()
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            self.error = exc
        finally:
            self.started.set()


def spooled_ids(spool: Path) -> list[int]:
    """The record ids in every frame the spool holds."""
    out: list[int] = []
    for path in sorted(spool.glob("*.fwd")):
        proto = ServerConnection()
        proto.receive_data(path.read_bytes())
        while (event := proto.next_event()) is not None:
            if isinstance(event, EntriesReceived):
                out += [rec["i"] for _, _, rec, _ in event.entries]
    return out


@pytest.mark.parametrize("many", [0, 50], ids=["emit", "emit_many"])
def test_emits_racing_close_are_delivered_or_refused(server: ServerThread, many: int) -> None:
    client = ForwardClient(server.host, server.port, batch_records=100, queue_max_records=500)
    emitters = [Emitter(client, k * 10_000_000, many) for k in range(2)]
    for e in emitters:
        e.start()
    for e in emitters:
        assert e.started.wait(20)
    assert client.close(timeout=60) is True  # everything accepted was delivered
    for e in emitters:
        e.join(20)
        assert isinstance(e.error, RuntimeError), e.error  # the losers were refused
    accepted = sorted(i for e in emitters for i in e.accepted)
    assert client.stats.emitted == len(accepted)
    assert client.stats.dropped_records == 0
    got = {rec["i"] for _, _, rec, _ in server.wait_for(len(accepted), 5)}
    assert [i for i in accepted if i not in got] == []


def test_emits_racing_close_end_up_in_the_spool(tmp_path: Path) -> None:
    client = ForwardClient("127.0.0.1", free_port(), batch_records=100, spool_dir=tmp_path,
                           backoff_max=0.05)  # nobody listens: everything goes to the spool
    emitters = [Emitter(client, k * 10_000_000) for k in range(2)]
    for e in emitters:
        e.start()
    for e in emitters:
        assert e.started.wait(20)
    assert client.close(timeout=0.2) is False
    for e in emitters:
        e.join(20)
        assert isinstance(e.error, RuntimeError), e.error
    accepted = sorted(i for e in emitters for i in e.accepted)
    assert sorted(spooled_ids(tmp_path)) == accepted
    assert client.stats.dropped_records == 0


@pytest.mark.parametrize("many", [0, 50], ids=["emit", "emit_many"])
def test_emit_blocked_on_a_full_queue_is_refused_by_close(many: int) -> None:
    # No receiver and no spool: close() gives up, and every accepted record must be counted
    # as dropped. An emit still waiting for room must not slip in after that count.
    client = ForwardClient("127.0.0.1", free_port(), batch_records=10, queue_max_records=20,
                           overflow="block", backoff_max=0.05)
    emitter = Emitter(client, 0, many)
    emitter.start()
    deadline = time.monotonic() + 10
    while client.stats.emitted < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # the emitter now waits for room that never comes
    assert emitter.is_alive()
    assert client.close(timeout=0.2) is False
    emitter.join(20)
    assert not emitter.is_alive()
    assert isinstance(emitter.error, RuntimeError)
    assert client.stats.emitted == len(emitter.accepted)
    assert client.stats.dropped_records == len(emitter.accepted)


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_close_after_everything_is_acked_does_not_wait_for_ack_timeout(
    make_server: Callable[..., ServerThread], server_ssl: ssl.SSLContext,
    client_ssl: ssl.SSLContext, tls: bool,
) -> None:
    # With TLS 1.3 the server's session tickets arrive after the handshake; the client used to
    # block in recv() on them until ack_timeout, holding up flush() and close().
    ack_timeout = 30.0
    srv = make_server(ssl=server_ssl) if tls else make_server()
    kw: dict[str, Any] = {"ssl_context": client_ssl} if tls else {}
    client = ForwardClient(srv.host, srv.port, ack_timeout=ack_timeout, **kw)
    deadline = time.monotonic() + 10
    while client.stats.connects < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # idle on an open connection
    for i in range(10):
        client.emit("t", {"i": i})
    assert client.flush(timeout=ack_timeout / 3)
    started = time.monotonic()
    assert client.close() is True
    assert time.monotonic() - started < ack_timeout / 3  # generous: it takes milliseconds
    assert sorted(rec["i"] for _, _, rec, _ in srv.entries) == list(range(10))
    assert client.stats.ack_timeouts == 0


def test_close_of_an_idle_tls_client_returns_promptly(
    make_server: Callable[..., ServerThread], server_ssl: ssl.SSLContext,
    client_ssl: ssl.SSLContext,
) -> None:
    ack_timeout = 30.0
    srv = make_server(ssl=server_ssl)
    client = ForwardClient(srv.host, srv.port, ack_timeout=ack_timeout, ssl_context=client_ssl)
    deadline = time.monotonic() + 10
    while client.stats.connects < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    started = time.monotonic()
    assert client.close() is True
    assert time.monotonic() - started < ack_timeout / 3
