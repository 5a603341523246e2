"""The threaded client against our real server: batching, overflow, spool, resends."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from qtap_fluent.fluentbit.forward import codec
from qtap_fluent.fluentbit.forward.client import ForwardClient
from qtap_fluent.fluentbit.forward.connection import ServerConnection
from qtap_fluent.fluentbit.forward.events import EntriesReceived, EventTime

from .conftest import ServerThread, free_port


def ids(srv: ServerThread) -> list[int]:
    return [rec["i"] for _, _, rec, _ in srv.entries]


def test_batches_by_count_and_flush_delivers_the_rest(server: ServerThread) -> None:
    with ForwardClient(server.host, server.port, batch_records=10, batch_age=60) as client:
        for i in range(35):
            client.emit("t", {"i": i})
        assert client.flush(10)
        assert client.stats.sent_chunks == 4  # 10 + 10 + 10 + the 5 flush() sealed
        assert client.stats.acked_records == 35
    assert sorted(ids(server)) == list(range(35))


def test_batches_by_age_without_flush(server: ServerThread) -> None:
    client = ForwardClient(server.host, server.port, batch_records=1000, batch_age=0.05)
    for i in range(3):
        client.emit("t", {"i": i})
    assert sorted(rec["i"] for _, _, rec, _ in server.wait_for(3)) == [0, 1, 2]
    client.close()


def test_batches_by_bytes(server: ServerThread) -> None:
    with ForwardClient(server.host, server.port, batch_bytes=1000, batch_age=60) as client:
        for i in range(12):
            client.emit("t", {"i": i, "pad": "x" * 300})
        client.flush(10)
        assert client.stats.sent_chunks == 4  # 3 records of ~330 bytes reach 1000 bytes
    assert sorted(ids(server)) == list(range(12))


def test_one_batch_per_tag_and_times_kept(server: ServerThread) -> None:
    with ForwardClient(server.host, server.port) as client:
        client.emit("a", {"i": 0}, EventTime(1700000000, 5))
        client.emit("b", {"i": 1}, 1_700_000_001_000_000_007)  # int nanoseconds
        client.flush(10)
    got = {tag: t for tag, t, _, _ in server.entries}
    assert got == {"a": EventTime(1700000000, 5), "b": EventTime(1700000001, 7)}


@pytest.mark.parametrize("many", [0, 30], ids=["emit", "emit_many"])
def test_drop_oldest_counts_drops_and_never_blocks(many: int) -> None:
    port = free_port()  # nobody listens
    client = ForwardClient("127.0.0.1", port, batch_records=10, queue_max_records=50,
                           overflow="drop-oldest", backoff_max=0.05)
    if many:
        for i in range(0, 200, many):
            client.emit_many("t", [(None, {"i": j}) for j in range(i, min(200, i + many))])
            # The bound holds between calls too: the queue and the open batch.
            assert client._queued_records + client._batcher.pending_records <= 50
    else:
        for i in range(200):
            client.emit("t", {"i": i})
    assert client.stats.emitted == 200
    assert client.stats.dropped_records >= 140
    assert client.close(timeout=0.2) is False
    assert client.stats.dropped_records == 200  # everything else is lost at close (no spool)


@pytest.mark.parametrize("many", [0, 7], ids=["emit", "emit_many"])
def test_block_waits_for_the_receiver(
    make_server: Callable[..., ServerThread], many: int
) -> None:
    port = free_port()
    client = ForwardClient("127.0.0.1", port, batch_records=10, queue_max_records=20,
                           overflow="block", backoff_max=0.05)
    done = threading.Event()

    def produce() -> None:
        if many:
            for i in range(0, 100, many):
                client.emit_many("t", [(None, {"i": j}) for j in range(i, min(100, i + many))])
        else:
            for i in range(100):
                client.emit("t", {"i": i})
        done.set()

    threading.Thread(target=produce, daemon=True).start()
    assert not done.wait(0.5)  # blocked: the queue is full and no receiver
    srv = make_server(port=port)
    assert done.wait(20)
    assert client.close(20)
    assert sorted(ids(srv)) == list(range(100))
    assert client.stats.dropped_records == 0


def test_spool_keeps_records_across_a_client_restart(
    tmp_path: Path, make_server: Callable[..., ServerThread]
) -> None:
    port = free_port()
    spool = tmp_path / "spool"
    first = ForwardClient("127.0.0.1", port, batch_records=10, spool_dir=spool,
                          backoff_max=0.05, queue_max_records=30)
    for i in range(100):
        first.emit("t", {"i": i})  # would block without the spool: 100 > queue_max_records
    assert first.close(timeout=0.3) is False
    assert len(list(spool.glob("*.fwd"))) == 10
    srv = make_server(port=port)
    with ForwardClient("127.0.0.1", port, spool_dir=spool) as second:
        assert second.flush(20)
    assert sorted(ids(srv)) == list(range(100))
    assert list(spool.iterdir()) == []


def test_spool_drains_when_the_receiver_comes_back(
    tmp_path: Path, make_server: Callable[..., ServerThread]
) -> None:
    port = free_port()
    client = ForwardClient("127.0.0.1", port, batch_records=10, batch_age=0.01,
                           spool_dir=tmp_path, backoff_max=0.05)
    for i in range(50):
        client.emit("t", {"i": i})
    deadline = time.monotonic() + 10
    while client.stats.spooled_chunks < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.stats.spooled_chunks == 5
    srv = make_server(port=port)
    assert client.flush(20)
    client.close()
    assert sorted(ids(srv)) == list(range(50))


class SilentThenAckingServer:
    """Raw socket server: the first connection reads and never acks; later ones ack."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.records: list[int] = []
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn, self.connections > 1),
                             daemon=True).start()

    def _handle(self, conn: socket.socket, ack: bool) -> None:
        proto = ServerConnection()
        with conn:
            while data := conn.recv(65536):
                proto.receive_data(data)
                while (event := proto.next_event()) is not None:
                    if isinstance(event, EntriesReceived) and ack:
                        self.records += [rec["i"] for _, _, rec, _ in event.entries]
                        assert event.chunk is not None
                        conn.sendall(codec.encode_ack(event.chunk))


def test_missing_ack_is_resent_after_the_timeout() -> None:
    srv = SilentThenAckingServer()
    with ForwardClient("127.0.0.1", srv.port, ack_timeout=0.3, backoff_max=0.05) as client:
        for i in range(5):
            client.emit("t", {"i": i})
        assert client.flush(10)
        assert client.stats.ack_timeouts == 1
        assert client.stats.resent_chunks == 1
    assert sorted(srv.records) == list(range(5))
    srv.sock.close()


def test_pipelining_keeps_several_chunks_in_flight(server: ServerThread) -> None:
    slow_batches: list[int] = []

    def slow(batch: list[object]) -> bool:
        slow_batches.append(len(batch))
        time.sleep(0.05)
        return True

    server.accept = slow  # type: ignore[assignment]
    with ForwardClient(server.host, server.port, batch_records=10, max_in_flight=8) as client:
        for i in range(80):
            client.emit("t", {"i": i})
        assert client.flush(20)
    # With 8 chunks in flight the server finds several decoded requests per wake-up and
    # merges them into one consumer batch; one-at-a-time would give 8 batches of 10.
    assert max(slow_batches) > 10
    assert sorted(ids(server)) == list(range(80))


def test_a_full_window_is_counted_and_emitters_keep_feeding_it(server: ServerThread) -> None:
    def slow(batch: list[object]) -> bool:
        time.sleep(0.02)  # acks come late: the 2-frame window fills up
        return True

    server.accept = slow  # type: ignore[assignment]
    with ForwardClient(server.host, server.port, batch_records=10, max_in_flight=2) as client:
        for i in range(300):
            client.emit("t", {"i": i})
            if i % 10 == 0:
                time.sleep(0.001)  # an emitter that keeps going while acks trickle in
        assert client.flush(20)
        assert client.stats.window_full >= 1
        assert client.stats.acked_records == 300
    assert sorted(ids(server)) == list(range(300))


def test_bad_record_raises_and_the_client_keeps_working(server: ServerThread) -> None:
    with ForwardClient(server.host, server.port) as client:
        with pytest.raises(TypeError):
            client.emit("t", {"i": object()})
        client.emit("t", {"i": 1})
        assert client.flush(10)
    assert ids(server) == [1]
    with pytest.raises(RuntimeError, match="closed"):
        client.emit("t", {"i": 2})


def test_full_spool_drops_oldest_and_counts(tmp_path: Path) -> None:
    port = free_port()
    client = ForwardClient("127.0.0.1", port, batch_records=10, batch_age=60,
                           spool_dir=tmp_path, spool_max_bytes=2000, overflow="drop-oldest",
                           backoff_max=0.05)
    for i in range(100):
        client.emit("t", {"i": i, "pad": "x" * 50})  # ~70 bytes: a 10-record frame ~700 bytes
    client.close(timeout=0.2)
    frames = list(tmp_path.glob("*.fwd"))
    assert 1 <= len(frames) <= 2  # the newest frames that fit in 2000 bytes
    assert sum(f.stat().st_size for f in frames) <= 2000
    assert client.stats.dropped_records == 100 - 10 * len(frames)


def test_oversized_record_is_refused_at_emit(server: ServerThread) -> None:
    with ForwardClient(server.host, server.port, max_record_bytes=1000) as client:
        with pytest.raises(ValueError, match="max_record_bytes"):
            client.emit("t", {"i": 0, "blob": "x" * 5000})
        client.emit("t", {"i": 1})
    assert ids(server) == [1]


def test_surrogate_escaped_strings_round_trip(server: ServerThread) -> None:
    # What our server hands out for invalid UTF-8 in msgpack str must be sendable again.
    odd = b"caf\xe9 \xff".decode("utf-8", "surrogateescape")
    with ForwardClient(server.host, server.port) as client:
        client.emit("t", {"i": 0, "s": odd})
        assert client.flush(10)
    assert server.entries[0][2] == {"i": 0, "s": odd}
