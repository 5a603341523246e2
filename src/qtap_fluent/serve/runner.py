"""Run ``serve``: the forward server, one delivery thread, the flush ticker and the metrics.

Threads and loop: the asyncio loop owns the sockets (A's ``ForwardServer``, the metrics
endpoint). Filters and outputs run on **one** worker thread, so plugins never see concurrent
calls and blocking boto3 calls never stall the loop. The forward server awaits the consumer,
and acks a chunk only after ``Pipeline.deliver`` returned True for it: every matching output
accepted it durably (S3 spooled and fsynced, file fsynced, CloudWatch sent).

On SIGTERM/SIGINT (or ``stop`` set): stop accepting, let running deliveries finish and ack,
then flush everything the outputs hold (S3 uploads its open objects) and close them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from qtap_fluent.serve.config import ServeConfig
from qtap_fluent.serve.metrics import render, start_metrics_server
from qtap_fluent.serve.pipeline import Pipeline
from qtap_fluent.serve.plugins import Record

log = logging.getLogger("qtap_fluent.serve")

#: Fluent Bit's group start/end markers carry these EventTime seconds (flb_log_event_decoder.c):
#: they delimit metadata groups and are not records.
GROUP_MARKERS = frozenset({0xFFFFFFFF, 0xFFFFFFFE})


def to_triples(batch: list[Any]) -> list[tuple[str, float, Record]]:
    """A's forward entries ``(tag, EventTime, record, metadata)`` as ``(tag, seconds, record)``."""
    out: list[tuple[str, float, Record]] = []
    for tag, t, record, _meta in batch:
        if t.seconds in GROUP_MARKERS:
            continue
        rec = record if isinstance(record, dict) else {"message": record}
        out.append((tag, t.seconds + t.nanoseconds / 1e9, rec))
    return out


class ServeApp:
    """One running ``serve``: build with a config and a pipeline, then ``await run()``."""

    def __init__(self, cfg: ServeConfig, pipeline: Pipeline) -> None:
        self.cfg = cfg
        self.pipeline = pipeline
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="serve-out")
        self.queue_depth = 0
        self.server: Any = None
        self.address: tuple[str, int] | None = None
        self.metrics_address: tuple[str, int] | None = None

    async def _consume(self, batch: list[Any]) -> bool:
        triples = to_triples(batch)
        if not triples:
            return True
        loop = asyncio.get_running_loop()
        self.queue_depth += 1
        try:
            return await loop.run_in_executor(self.executor, self.pipeline.deliver, triples)
        finally:
            self.queue_depth -= 1

    def metrics_text(self) -> str:
        snap = self.pipeline.snapshot()
        snap["queue_depth"] = self.queue_depth
        stats = self.server.stats.as_dict() if self.server is not None else None
        return render(snap, stats)

    async def _ticker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.cfg.flush_interval)
            await loop.run_in_executor(self.executor, self.pipeline.flush)

    async def run(self, stop: asyncio.Event | None = None,
                  on_ready: Callable[[ServeApp], None] | None = None) -> None:
        """Serve until ``stop`` is set or SIGTERM/SIGINT arrives; then flush and close."""
        from qtap_fluent.fluentbit.forward.server import ForwardServer

        loop = asyncio.get_running_loop()
        stop = stop or asyncio.Event()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread (tests): the caller sets ``stop``
        await loop.run_in_executor(self.executor, self.pipeline.open)
        host, port = self.cfg.listen
        self.server = ForwardServer(self._consume, host=host, port=port)
        await self.server.start()
        addr = self.server.address
        assert isinstance(addr, tuple)
        self.address = addr
        metrics = None
        if self.cfg.metrics_listen is not None:
            metrics = await start_metrics_server(*self.cfg.metrics_listen, self.metrics_text)
            mhost, mport = metrics.sockets[0].getsockname()[:2]
            self.metrics_address = (str(mhost), int(mport))
        outputs = ", ".join(f"{o.name} ({o.matcher!r})" for o in self.pipeline.outputs)
        log.info("listening for forward on %s:%d%s; outputs: %s", addr[0], addr[1],
                 f"; metrics on http://{self.metrics_address[0]}:{self.metrics_address[1]}"
                 "/metrics" if self.metrics_address else "", outputs)
        if on_ready is not None:
            on_ready(self)
        ticker = asyncio.create_task(self._ticker())
        try:
            await stop.wait()
        finally:
            log.info("stopping: finishing deliveries and flushing outputs")
            await self.server.close()
            ticker.cancel()
            if metrics is not None:
                metrics.close()
            await loop.run_in_executor(self.executor, self._final_flush)
            self.executor.shutdown(wait=True)
            for sig in installed:
                loop.remove_signal_handler(sig)
            log.info("stopped")

    def _final_flush(self) -> None:
        self.pipeline.flush(force=True)
        self.pipeline.close()
