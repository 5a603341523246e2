"""The client's fast paths: emit_many, batch buffers sent as they are, non-blocking partial writes,
encoding in place (msgspec), or msgpack without it."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

from qtap_fluent.fluentbit.forward import batcher as batcher_mod
from qtap_fluent.fluentbit.forward import client as client_mod
from qtap_fluent.fluentbit.forward import codec
from qtap_fluent.fluentbit.forward.client import ForwardClient
from qtap_fluent.fluentbit.forward.connection import ServerConnection
from qtap_fluent.fluentbit.forward.events import EntriesReceived, EventTime

from .conftest import ServerThread


def record(i: int) -> dict[str, Any]:
    """A record whose every byte depends on ``i``: a reused buffer leaking shows up."""
    return {"i": i, "pad": str(i) * (400 // len(str(i)) + 1), "raw": str(i).encode()}


def check(records: list[Any], n: int) -> None:
    assert sorted(r["i"] for r in records) == list(range(n))
    assert all(r == record(r["i"]) for r in records)


def test_emit_many_delivers_every_record_with_its_time(server: ServerThread) -> None:
    entries = [(EventTime(1700000000, i), record(i)) for i in range(2500)]
    with ForwardClient(server.host, server.port, batch_bytes=16384) as client:
        assert client.emit_many("many", entries[:1000]) == 1000
        assert client.emit_many("many", iter(entries[1000:])) == 1500
        assert client.flush(20)
        assert client.stats.emitted == client.stats.acked_records == 2500
    got = {rec["i"]: (tag, t) for tag, t, rec, _ in server.entries}
    assert got == {i: ("many", EventTime(1700000000, i)) for i in range(2500)}
    check([rec for _, _, rec, _ in server.entries], 2500)


def test_emit_many_is_all_or_nothing(server: ServerThread) -> None:
    with ForwardClient(server.host, server.port) as client:
        bad = [(None, {"i": 0}), (None, {"i": 1}), (None, {"i": object()})]
        with pytest.raises(TypeError, match="entry 2"):
            client.emit_many("t", bad)
        with pytest.raises(ValueError, match="entry 1"):
            client.emit_many("t", [(None, {"i": 0}), (EventTime(2**32, 0), {"i": 1})])
        assert client.stats.emitted == 0
        client.emit_many("t", [(1.5, {"i": 9})])
        assert client.flush(10)
    assert [rec for _, _, rec, _ in server.entries] == [{"i": 9}]
    with pytest.raises(RuntimeError):
        client.emit_many("t", [(None, {"i": 10})])


def test_emit_many_refuses_oversized_and_keeps_surrogates(server: ServerThread) -> None:
    odd = b"caf\xe9".decode("utf-8", "surrogateescape")
    with ForwardClient(server.host, server.port, max_record_bytes=1000) as client:
        with pytest.raises(ValueError, match="entry 1: .*max_record_bytes"):
            client.emit_many("t", [(None, {"i": 0}), (None, {"i": 1, "pad": "x" * 2000})])
        assert client.emit_many("t", [(None, {"i": 2, "s": odd}), (None, {"i": 3})]) == 2
        assert client.flush(10)
    assert [rec for _, _, rec, _ in server.entries] == [{"i": 2, "s": odd}, {"i": 3}]


def test_many_small_chunks_never_mix_records(server: ServerThread) -> None:
    # ~430-byte records, 4 KiB batches: ~600 chunks, each sent from the buffer its records
    # were encoded into while the next batches are being written.
    with ForwardClient(server.host, server.port, batch_bytes=4096, max_in_flight=4) as client:
        for i in range(6000):
            client.emit("t", record(i))
        assert client.flush(30)
        assert client.stats.sent_chunks > 500
    check([rec for _, _, rec, _ in server.entries], 6000)


class SlowReader:
    """A forward receiver that reads 4 KiB at a time through a small receive buffer, so the
    client's non-blocking writes come back partial; acks when ``ack`` is set."""

    def __init__(self, ack: bool) -> None:
        self.ack = ack
        self.records: list[Any] = []
        self.reads = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        proto = ServerConnection()
        with conn:
            while data := conn.recv(4096):
                self.reads += 1
                if self.reads % 16 == 0:
                    time.sleep(0.001)  # let the client's socket buffer fill up
                proto.receive_data(data)
                while (event := proto.next_event()) is not None:
                    if isinstance(event, EntriesReceived):
                        self.records += [rec for _, _, rec, _ in event.entries]
                        if self.ack and event.chunk is not None:
                            conn.sendall(codec.encode_ack(event.chunk))


@pytest.mark.parametrize("ack", [True, False], ids=["acks", "no-acks"])
def test_partial_writes_to_a_slow_reader_deliver_every_record(
    ack: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_connect = socket.create_connection

    def small_send_buffer(*args: Any, **kwargs: Any) -> socket.socket:
        # Loopback send buffers grow to megabytes: keep this one small so that a frame
        # only ever goes out in pieces, and sendmsg() stops in the middle of a buffer.
        sock = real_connect(*args, **kwargs)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        return sock

    monkeypatch.setattr(socket, "create_connection", small_send_buffer)
    srv = SlowReader(ack)
    n = 3000  # ~1.3 MB in 256 KiB frames
    with ForwardClient("127.0.0.1", srv.port, require_ack=ack, batch_bytes=1 << 18) as client:
        for i in range(n):
            client.emit("t", record(i))
        assert client.flush(60)
        assert client.stats.sent_records == n
    deadline = time.monotonic() + 20
    while len(srv.records) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    check(srv.records, n)
    assert srv.reads > 200  # the reader really took it in small pieces
    srv.sock.close()


def test_msgpack_fallback_without_msgspec(server: ServerThread,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Without msgspec, emit() and emit_many() pack with msgpack; bytes still travel as bin
    (use_bin_type) and every record arrives intact, from several threads at once."""
    monkeypatch.setattr(client_mod, "default_encode_into", lambda: None)
    monkeypatch.setattr(batcher_mod, "default_encode_into", lambda: None)
    with ForwardClient(server.host, server.port, batch_bytes=8192) as client:
        def produce(base: int) -> None:
            for i in range(base, base + 750):
                client.emit("t", record(i))
            for i in range(base + 750, base + 1500, 50):
                client.emit_many("t", [(None, record(j)) for j in range(i, i + 50)])

        threads = [threading.Thread(target=produce, args=(k * 1500,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert client.flush(30)
    check([rec for _, _, rec, _ in server.entries], 6000)


def test_emit_without_a_time_stamps_now_across_second_boundaries(server: ServerThread) -> None:
    """emit() caches the current second and subtracts nanoseconds: every record still gets
    the real time, also across a second boundary and from several threads."""
    stamps: list[tuple[int, int, int]] = []  # (before, index, after) in ns
    with ForwardClient(server.host, server.port) as client:
        time.sleep(1 - time.time() % 1 - 0.02 if time.time() % 1 < 0.97 else 0.05)
        i = 0
        deadline = time.monotonic() + 0.06  # straddles the next second
        while time.monotonic() < deadline:
            before = time.time_ns()
            client.emit("t", {"i": i})
            stamps.append((before, i, time.time_ns()))
            i += 1
            time.sleep(0.0005)

        def other(base: int) -> None:
            for j in range(base, base + 200):
                client.emit("t", {"i": j})

        threads = [threading.Thread(target=other, args=(10_000 * (k + 1),)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert client.flush(10)
    times = {rec["i"]: t for _, t, rec, _ in server.entries}
    assert len(times) == i + 600
    assert len({before // 1_000_000_000 for before, _, _ in stamps}) == 2  # crossed a second
    for before, j, after in stamps:
        got = times[j].seconds * 1_000_000_000 + times[j].nanoseconds
        assert before <= got <= after, (j, before, got, after)
        assert 0 <= times[j].nanoseconds < 1_000_000_000
