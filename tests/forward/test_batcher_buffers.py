"""The batcher hands full buffers to their chunks instead of copying, and reuses recycled ones."""

from __future__ import annotations

import io
from typing import Any

import msgpack
import pytest

from qtap_fluent.fluentbit.forward.batcher import Batcher, Chunk
from qtap_fluent.fluentbit.forward.codec import ext_hook
from qtap_fluent.fluentbit.forward.encode import shared_record_packer
from qtap_fluent.fluentbit.forward.events import EventTime

T = EventTime(1700000000, 9)


def records_of(chunk: Chunk) -> list[Any]:
    return [r for _, r in msgpack.Unpacker(io.BytesIO(chunk.payload), ext_hook=ext_hook)]


def pad(i: int) -> str:
    return str(i) * (900 // len(str(i)))


def fill(b: Batcher, start: int) -> Chunk:
    """Add ~1 KB records from ``start`` on until one seals a batch by size (that record
    opens the next batch)."""
    i = start
    while True:
        sealed = b.add("t", T, {"i": i, "pad": pad(i)}, 0.0)
        i += 1
        if sealed:
            assert len(sealed) == 1
            return sealed[0]


def ids(chunk: Chunk) -> list[int]:
    recs = records_of(chunk)
    assert all(r["pad"] == pad(r["i"]) for r in recs)  # no byte of another batch in here
    return [r["i"] for r in recs]


def test_a_full_batch_travels_in_its_own_buffer_and_stays_intact() -> None:
    b = Batcher(max_records=1000, max_bytes=4096, max_age=10, spare_buffers=2)
    first = fill(b, 0)
    assert first.buffer is not None  # handed over, not copied
    n = len(ids(first))
    second = fill(b, 100)
    assert second.buffer is not None and second.buffer is not first.buffer
    # The second batch was written into a fresh buffer: the first chunk is untouched.
    assert ids(first) == list(range(n))
    assert ids(second)[:2] == [n, 100]


def test_a_recycled_buffer_is_reused_for_the_next_batch() -> None:
    b = Batcher(max_records=1000, max_bytes=4096, max_age=10, spare_buffers=2)
    first = fill(b, 0)
    buf = first.buffer
    b.recycle(first)  # the batch open now already has its buffer: the next one gets this
    second = fill(b, 100)
    assert second.buffer is not buf
    n = ids(second)[-1] + 1
    third = fill(b, 200)
    assert third.buffer is buf
    assert ids(third)[:2] == [n, 200]


def test_spare_buffers_bounds_what_recycle_keeps() -> None:
    b = Batcher(max_records=1000, max_bytes=4096, max_age=10, spare_buffers=0)
    first = fill(b, 0)
    b.recycle(first)
    assert fill(b, 100).buffer is not first.buffer


def test_a_small_batch_is_copied_out() -> None:
    b = Batcher(max_records=1000, max_bytes=1 << 16, max_age=10)
    b.add("t", T, {"i": 1}, 0.0)
    (chunk,) = b.flush()
    assert chunk.buffer is None and isinstance(chunk.parts[0], bytes)
    b.recycle(chunk)  # harmless: nothing to take back
    assert records_of(chunk) == [{"i": 1}]


RECORDS: list[Any] = [
    {"i": 0, "s": "", "u": "h\u00e9llo \u2603 \U0001f600", "n": None, "b": True, "f": False},
    {"ints": [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1, 2**64 - 1,
              -1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, -(2**63)]},
    {"floats": [0.0, 1.5, -2.25, float("inf"), 1e300]},
    {"str": ["x" * n for n in (31, 32, 255, 256, 65535, 65536)]},
    {"bin": [b"", b"\x00" * 255, b"\x01" * 256, bytearray(b"ab"), b"\xff" * 70000]},
    {"arr": [list(range(15)), list(range(16)), list(range(70000)), (1, 2)]},
    {"map": [{str(k): k for k in range(15)}, {str(k): k for k in range(16)},
             {k: k for k in range(70000)}, {1: "int key", b"k": "bin key"}]},
    {"nested": {"a": {"b": {"c": [{"d": "e"}]}}}},
]


@pytest.mark.parametrize("record", RECORDS, ids=[str(i) for i in range(len(RECORDS))])
def test_the_shared_packer_writes_what_msgpack_writes(record: Any) -> None:
    pytest.importorskip("msgspec")
    pack = shared_record_packer()
    assert pack is not None
    assert pack(record) == msgpack.packb(record, use_bin_type=True)


def test_the_shared_packer_refuses_what_msgpack_refuses() -> None:
    pytest.importorskip("msgspec")
    pack = shared_record_packer()
    assert pack is not None
    with pytest.raises(TypeError):
        pack({"x": object()})
    with pytest.raises(OverflowError):
        pack({"x": 2**64})
    with pytest.raises(UnicodeEncodeError):  # the client falls back to surrogateescape
        pack({"x": b"\xff".decode("utf-8", "surrogateescape")})
