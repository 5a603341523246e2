"""The sans-I/O batcher: seals by count, bytes and age; payloads decode to the records."""

from __future__ import annotations

import io
import itertools

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qtap_fluent.fluentbit.forward.batcher import Batcher, Chunk
from qtap_fluent.fluentbit.forward.codec import ext_hook
from qtap_fluent.fluentbit.forward.events import EventTime

T = EventTime(1700000000, 9)


def records_of(chunk: Chunk) -> list[tuple[EventTime, dict[str, int]]]:
    return [(t, r) for t, r in msgpack.Unpacker(io.BytesIO(chunk.payload), ext_hook=ext_hook)]


def test_seals_by_count() -> None:
    b = Batcher(max_records=3, max_bytes=1 << 20, max_age=10)
    sealed = [c for i in range(7) for c in b.add("t", T, {"i": i}, 0.0)]
    assert [c.count for c in sealed] == [3, 3]
    assert b.pending_records == 1
    rest = b.flush()
    assert [c.count for c in rest] == [1]
    got = [r["i"] for c in sealed + rest for _, r in records_of(c)]
    assert got == list(range(7))
    assert all(t == T for c in sealed for t, _ in records_of(c))


def test_chunks_never_exceed_max_bytes() -> None:
    b = Batcher(max_records=1000, max_bytes=500, max_age=10)
    sealed = [c for i in range(20) for c in b.add("t", T, {"i": i, "p": "x" * 90}, 0.0)]
    sealed += b.flush()
    assert all(c.size <= 500 and len(c.payload) == c.size for c in sealed)
    assert [r["i"] for c in sealed for _, r in records_of(c)] == list(range(20))


def test_oversized_entry_travels_alone_after_sealing_the_open_batch() -> None:
    b = Batcher(max_records=1000, max_bytes=200, max_age=10)
    assert list(b.add("t", T, {"i": 0}, 0.0)) == []
    sealed = list(b.add("t", T, {"i": 1, "big": "y" * 500}, 0.0))
    assert [c.count for c in sealed] == [1, 1]
    assert [r["i"] for c in sealed for _, r in records_of(c)] == [0, 1]
    assert b.pending_records == 0


def test_seals_by_age_per_tag() -> None:
    b = Batcher(max_records=1000, max_bytes=1 << 20, max_age=0.5)
    b.add("a", T, {"i": 0}, 10.0)
    b.add("b", T, {"i": 1}, 10.3)
    assert b.next_deadline() == pytest.approx(10.5)
    assert b.due(10.4) == []
    assert [c.tag for c in b.due(10.5)] == ["a"]
    assert [c.tag for c in b.due(10.8)] == ["b"]
    assert b.next_deadline() is None


def test_buffer_is_reused_but_chunks_stay_intact() -> None:
    b = Batcher(max_records=2, max_bytes=1 << 16, max_age=10)
    first = [c for i in range(2) for c in b.add("t", T, {"i": i}, 0.0)]
    second = [c for i in range(2, 4) for c in b.add("t", T, {"i": i}, 0.0)]
    assert [r["i"] for _, r in records_of(first[0])] == [0, 1]  # not overwritten by 2, 3
    assert [r["i"] for _, r in records_of(second[0])] == [2, 3]


def test_time_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="EventTime range"):
        Batcher().add("t", EventTime(2**32, 0), {}, 0.0)


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(12, 300), max_size=60),
    max_records=st.integers(1, 12),
    max_bytes=st.integers(40, 700),
    cuts=st.lists(st.integers(0, 60), max_size=6),
)
def test_add_entries_seals_exactly_like_add_entry_one_at_a_time(
    sizes: list[int], max_records: int, max_bytes: int, cuts: list[int]
) -> None:
    """emit_many's bulk path: runs of entries copied per slice give the same chunks, byte for
    byte, as adding each entry alone (oversized ones travel alone), however the runs are cut."""
    entries = [bytes([i % 251]) * size for i, size in enumerate(sizes)]
    data = b"".join(entries)
    bounds = [0]
    for e in entries:
        bounds.append(bounds[-1] + len(e))

    def shape(sealed: list[Chunk]) -> list[tuple[int, bytes]]:
        return [(c.count, c.payload) for c in sealed]

    one = Batcher(max_records=max_records, max_bytes=max_bytes)
    bulk = Batcher(max_records=max_records, max_bytes=max_bytes)
    points = sorted({0, len(entries), *(c for c in cuts if c < len(entries))})
    total = 0
    for first, stop in itertools.pairwise(points):
        # Each run seals the same chunks, at the same moment, as its entries one at a time.
        expected = [c for e in entries[first:stop] for c in one.add_entry("t", e, 0.0)]
        got = bulk.add_entries("t", memoryview(data), bounds, first, stop, 0.0)
        assert shape(got) == shape(expected)
        assert bulk.pending_records == one.pending_records
        total += sum(c.count for c in got)
    rest = bulk.flush()
    assert shape(rest) == shape(one.flush())
    assert total + sum(c.count for c in rest) == len(entries)
