"""serve's forward sink queues a batch with emit_many() per run of one tag and still skips a
record that cannot be encoded (emit_many is all or nothing, so that run goes one by one)."""

from __future__ import annotations

from qtap_fluent.fluentbit.forward.events import EventTime
from qtap_fluent.sinks.base import Batch, Entry, Result
from qtap_fluent.sinks.forward import ForwardSink

from .conftest import ServerThread


def test_batch_with_tag_runs_and_a_bad_record(server: ServerThread) -> None:
    entries = [Entry(tag="a" if i < 4 or i >= 8 else "b", time=1700000000.0 + i,
                     record={"i": i, "bad": object()} if i == 5 else {"i": i})
               for i in range(12)]
    sink = ForwardSink(port=server.port, timeout=10)
    sink.open()
    assert sink.write(Batch(seq=1, entries=tuple(entries))) is Result.OK
    assert sink.close() is Result.OK
    got = [(tag, t, rec["i"]) for tag, t, rec, _ in server.entries]
    want = [(e.tag, EventTime(1700000000 + i, 0), i) for i, e in enumerate(entries) if i != 5]
    assert sorted(got, key=lambda g: g[2]) == want
