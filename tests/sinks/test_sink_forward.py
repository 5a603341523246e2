"""forward sink -> A's ForwardServer on 127.0.0.1 (a real socket, acks required)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from qtap_fluent.sinks.base import Batch, Entry, Result
from qtap_fluent.sinks.forward import ForwardSink


class Receiver:
    """A forward server in a thread whose consumer accepts or refuses on demand."""

    def __init__(self) -> None:
        self.got: list[tuple[str, Any]] = []
        self.accept = True
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _consume(self, batch: list[Any]) -> bool:
        if not self.accept:
            return False
        self.got.extend((tag, record) for tag, _t, record, _m in batch)
        return True

    async def _start(self) -> None:
        from qtap_fluent.fluentbit.forward.server import ForwardServer

        self.server = ForwardServer(self._consume, host="127.0.0.1", port=0)
        await self.server.start()
        addr = self.server.address
        assert isinstance(addr, tuple)
        self.port: int = addr[1]

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def batch(seq: int, n: int) -> Batch:
    return Batch(seq=seq, entries=tuple(Entry(tag="qtap.http", time=1.5, record={"i": i})
                                        for i in range(n)))


def test_forward_sink_delivers_with_acks(receiver: Receiver) -> None:
    s = ForwardSink(port=receiver.port, timeout=10)
    s.open()
    assert s.write(batch(1, 50)) is Result.OK
    assert s.close() is Result.OK
    assert receiver.got == [("qtap.http", {"i": i}) for i in range(50)]


def test_forward_sink_retry_does_not_queue_twice(receiver: Receiver) -> None:
    receiver.accept = False
    s = ForwardSink(port=receiver.port, timeout=0.5)
    s.open()
    assert s.write(batch(7, 5)) is Result.RETRY
    receiver.accept = True
    assert s.write(batch(7, 5)) is Result.OK  # same seq: waits, does not emit again
    s.close()
    assert sorted(r["i"] for _t, r in receiver.got) == list(range(5))


def test_forward_sink_to_nowhere_answers_retry() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    s = ForwardSink(port=port, timeout=0.1)
    s.open()
    assert s.write(batch(1, 1)) is Result.RETRY
    s.close()
