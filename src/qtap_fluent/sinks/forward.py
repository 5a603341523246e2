"""``forward`` sink: to another Fluent Bit / Fluentd / ``serve``, through A's ``ForwardClient``.

``write`` queues the batch on the client and waits (up to ``timeout``) until the receiver acked
it. On timeout it answers RETRY but the records stay queued in the client, which keeps resending
them; so when the runner offers the *same* batch again (same ``Batch.seq``) the sink only waits
again instead of queueing a second copy.
"""

from __future__ import annotations

from itertools import groupby
from typing import Any

from qtap_fluent.sinks.base import Batch, Result


class ForwardSink:
    """Send records with acks; ``tag`` overrides every record's tag when set."""

    name = "forward"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 24224, tag: str | None = None,
                 timeout: float = 10.0, client: Any = None) -> None:
        self.host, self.port, self.tag, self.timeout = host, port, tag, timeout
        self._client = client
        self._pending_seq: int | None = None
        self.records_out = 0

    def open(self) -> None:
        if self._client is None:
            from qtap_fluent.fluentbit.forward.client import ForwardClient

            self._client = ForwardClient(self.host, self.port, require_ack=True)

    def write(self, batch: Batch) -> Result:
        if self._client is None:
            self.open()
        assert self._client is not None
        if self._pending_seq != batch.seq:
            # One emit_many() per run of entries with the same tag (one lock per run).
            for tag, run in groupby(batch.entries, key=lambda e: self.tag or e.tag):
                entries = [(e.time, dict(e.record)) for e in run]
                try:
                    self._client.emit_many(tag, entries)
                except (TypeError, ValueError, OverflowError):  # all or nothing: one by one
                    for t, record in entries:
                        try:
                            self._client.emit(tag, record, t)
                        except (TypeError, ValueError, OverflowError):
                            continue  # it cannot be encoded: that record can never be sent
            self._pending_seq = batch.seq
        if not self._client.flush(timeout=self.timeout):
            return Result.RETRY
        self._pending_seq = None
        self.records_out += len(batch)
        return Result.OK

    def flush(self, now: float, *, force: bool = False) -> Result:
        return Result.OK

    def close(self) -> Result:
        if self._client is not None:
            done = self._client.close(timeout=self.timeout)
            self._client = None
            return Result.OK if done else Result.RETRY
        return Result.OK
