"""The ``serve`` pipeline: filters, routing by tag, and delivery to outputs. No sockets, no loop.

``Pipeline.deliver(entries)`` runs every filter whose Match fits the tag, in config order, then
hands each output the entries its Match selects, and answers True only when every output that
received something accepted it durably (``Result.OK``). ``serve`` acks the sender on True; on
False the sender keeps the chunk and resends it.

* A filter that raises, or returns something that is not a record, list of records or None, is
  counted in its ``errors``; its ``on_error`` policy decides the record's fate: ``pass``
  (unchanged, the default) or ``drop`` (the default for ``redact``: fail closed, never let an
  unredacted record through).
* An output answering RETRY (or raising) is retried ``retry_limit`` times with doubling sleeps;
  then the whole chunk is refused. ERROR is Fluent Bit's ``FLB_ERROR``: retrying cannot help, the
  records are counted as dropped and the chunk is still acked.
* When one output accepted a chunk and another refused it, the sender resends the whole chunk.
  The pipeline remembers (bounded, ``MEMO_MAX``) which outputs already took a chunk with the
  same content and skips them on the resend, so they do not store it twice.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from qtap_fluent.serve.match import TagMatcher
from qtap_fluent.serve.plugins import FilterFn, Record
from qtap_fluent.sinks.base import Batch, Entry, Result, Sink, SinkError

log = logging.getLogger("qtap_fluent.serve")

#: Chunks whose partial delivery is remembered (oldest forgotten first).
MEMO_MAX = 1024


@dataclass(slots=True)
class Counters:
    """Per-plugin counters exported as metrics."""

    records_in: int = 0
    records_out: int = 0
    dropped: int = 0
    errors: int = 0
    retried: int = 0


@dataclass(slots=True)
class FilterStage:
    name: str
    matcher: TagMatcher
    fn: FilterFn
    on_error: str = "pass"
    counters: Counters = field(default_factory=Counters)


@dataclass(slots=True)
class OutputStage:
    name: str
    matcher: TagMatcher
    sink: Sink
    retry_limit: int = 3
    counters: Counters = field(default_factory=Counters)


class Pipeline:
    """Filters then outputs; call ``deliver`` from one thread at a time."""

    def __init__(self, filters: Sequence[FilterStage], outputs: Sequence[OutputStage], *,
                 retry_backoff: float = 0.2, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.time) -> None:
        self.filters = list(filters)
        self.outputs = list(outputs)
        self.retry_backoff = retry_backoff
        self.sleep = sleep
        self.clock = clock
        self.records_in = 0
        self.records_unrouted = 0
        self.chunks_refused = 0
        self._seq = 0
        self._memo: OrderedDict[bytes, set[int]] = OrderedDict()
        self._last_error_log: dict[str, float] = {}

    # --- lifecycle -----------------------------------------------------------------------
    def open(self) -> None:
        """Open every output; SinkError names the one that cannot start (and why)."""
        for out in self.outputs:
            try:
                out.sink.open()
            except SinkError as exc:
                raise SinkError(f"output {out.name}: {exc}") from None
            except Exception as exc:  # noqa: BLE001 - botocore, OSError, plugin code
                raise SinkError(f"output {out.name} cannot start: {type(exc).__name__}: "
                                f"{exc}") from None

    def flush(self, *, force: bool = False) -> None:
        now = self.clock()
        for out in self.outputs:
            try:
                if out.sink.flush(now, force=force) is not Result.OK:
                    out.counters.retried += 1
            except Exception as exc:  # noqa: BLE001 - a plugin must not stop the server
                self._plugin_error(out.name, out.counters, exc)

    def close(self) -> None:
        for out in self.outputs:
            try:
                out.sink.close()
            except Exception as exc:  # noqa: BLE001 - close the others regardless
                self._plugin_error(out.name, out.counters, exc)

    # --- filters ---------------------------------------------------------------------------
    def apply_filters(self, entries: Iterable[tuple[str, float, Record]]) -> list[Entry]:
        """Run the filters; return what is left as sink entries."""
        current = list(entries)
        self.records_in += len(current)
        for stage in self.filters:
            nxt: list[tuple[str, float, Record]] = []
            for tag, t, record in current:
                if not stage.matcher.matches(tag):
                    nxt.append((tag, t, record))
                    continue
                stage.counters.records_in += 1
                try:
                    out = stage.fn(tag, t, record)
                    if isinstance(out, dict):
                        nxt.append((tag, t, out))
                    elif out is None:
                        stage.counters.dropped += 1
                        continue
                    elif isinstance(out, list) and all(isinstance(r, dict) for r in out):
                        nxt.extend((tag, t, r) for r in out)
                    else:
                        raise TypeError(f"returned {type(out).__name__}, not a record, "
                                        "a list of records or None")
                except Exception as exc:  # noqa: BLE001 - a plugin must not stop the server
                    self._plugin_error(stage.name, stage.counters, exc)
                    if stage.on_error == "drop":
                        stage.counters.dropped += 1
                        continue
                    nxt.append((tag, t, record))
                    stage.counters.records_out += 1
                    continue
                stage.counters.records_out += 1 if isinstance(out, dict) else len(out)
            current = nxt
        return [Entry(tag=tag, time=t, record=r) for tag, t, r in current]

    # --- delivery --------------------------------------------------------------------------
    def deliver(self, entries: Iterable[tuple[str, float, Record]]) -> bool:
        """Filter, route and write ``entries``; True when every output took its share."""
        kept = self.apply_filters(entries)
        shares: list[list[Entry]] = [[] for _ in self.outputs]
        for entry in kept:
            routed = False
            for i, out in enumerate(self.outputs):
                if out.matcher.matches(entry.tag):
                    shares[i].append(entry)
                    routed = True
            if not routed:
                self.records_unrouted += 1
        key = self._fingerprint(kept) if self._memo else None
        done = self._memo.get(key, set()) if key is not None else set()
        ok = True
        accepted: set[int] = set(done)
        for i, share in enumerate(shares):
            if not share or i in done:
                continue
            if self._write(self.outputs[i], share):
                accepted.add(i)
            else:
                ok = False
        if ok:
            if key is not None:
                self._memo.pop(key, None)
            return True
        self.chunks_refused += 1
        if accepted:
            key = key if key is not None else self._fingerprint(kept)
            self._memo[key] = accepted
            self._memo.move_to_end(key)
            while len(self._memo) > MEMO_MAX:
                self._memo.popitem(last=False)
        return False

    def _write(self, out: OutputStage, share: list[Entry]) -> bool:
        self._seq += 1
        batch = Batch(seq=self._seq, entries=tuple(share))
        out.counters.records_in += len(share)
        delay = self.retry_backoff
        for attempt in range(out.retry_limit + 1):
            try:
                result = out.sink.write(batch)
            except Exception as exc:  # noqa: BLE001 - a plugin must not stop the server
                self._plugin_error(out.name, out.counters, exc)
                result = Result.RETRY
            if result is Result.OK:
                out.counters.records_out += len(share)
                return True
            if result is Result.ERROR:
                out.counters.dropped += len(share)
                out.counters.errors += 1
                return True  # FLB_ERROR: a retry cannot help; do not make the sender resend
            out.counters.retried += 1
            if attempt < out.retry_limit:
                self.sleep(delay)
                delay *= 2
        self._rate_limited(out.name, logging.WARNING,
                           "output %s did not accept %d record(s) after %d attempt(s): not "
                           "acked, the sender will resend", out.name, len(share),
                           out.retry_limit + 1)
        return False

    @staticmethod
    def _fingerprint(entries: list[Entry]) -> bytes:
        h = hashlib.blake2b(digest_size=16)
        for e in entries:
            h.update(repr((e.tag, e.time, e.record)).encode("utf-8", "replace"))
        return h.digest()

    def _plugin_error(self, name: str, counters: Counters, exc: BaseException) -> None:
        counters.errors += 1
        self._rate_limited(name, logging.ERROR, "plugin %s failed (%d errors so far): %s: %s",
                           name, counters.errors, type(exc).__name__, exc)

    def _rate_limited(self, name: str, level: int, msg: str, *args: object) -> None:
        # One line per plugin per 10 s: a plugin failing on every record must not flood the log.
        now = self.clock()
        if now - self._last_error_log.get(name, float("-inf")) >= 10.0:
            self._last_error_log[name] = now
            log.log(level, msg, *args)

    # --- metrics ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Counters for the metrics endpoint."""
        return {
            "records_in": self.records_in,
            "records_unrouted": self.records_unrouted,
            "chunks_refused": self.chunks_refused,
            "filters": [(f.name, f.counters) for f in self.filters],
            "outputs": [(o.name, o.counters, getattr(o.sink, "pending_objects", None))
                        for o in self.outputs],
        }
