"""The batcher encodes records in place, hands each chunk its own buffer, and leaves a batch
as it was when a record cannot be added."""

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


def test_a_sealed_chunk_owns_its_buffer_and_stays_intact() -> None:
    b = Batcher(max_records=1000, max_bytes=4096, max_age=10)
    first = fill(b, 0)
    n = len(ids(first))
    before = first.payload
    second = fill(b, 100)
    third = fill(b, 200)
    # Later batches were written into buffers of their own: the first chunk is untouched.
    assert first.payload == before and ids(first) == list(range(n))
    assert ids(second)[:2] == [n, 100]
    assert first.parts[0] is not second.parts[0] is not third.parts[0]


def test_chunks_are_sent_from_the_buffer_records_were_encoded_into() -> None:
    b = Batcher(max_records=3, max_bytes=1 << 16, max_age=10)
    sealed = [c for i in range(3) for c in b.add("t", T, {"i": i}, 0.0)]
    (chunk,) = sealed
    assert len(chunk.parts) == 1 and isinstance(chunk.parts[0], bytearray)
    assert chunk.size == len(chunk.parts[0])
    assert [r["i"] for r in records_of(chunk)] == [0, 1, 2]


@pytest.mark.parametrize("encode_into", [True, None], ids=["msgspec", "msgpack"])
def test_a_record_that_fails_to_encode_leaves_the_batch_as_it_was(encode_into: Any) -> None:
    b = Batcher(max_records=1000, max_bytes=1 << 16, max_age=10, encode_into=encode_into)
    b.add("t", T, {"i": 0}, 0.0)
    with pytest.raises(TypeError):
        b.add("t", T, {"i": 1, "bad": object()}, 0.0)
    with pytest.raises(TypeError):
        b.add("u", T, {"bad": object()}, 0.0)  # would have opened a batch of its own
    b.add("t", T, {"i": 2}, 0.0)
    assert b.pending_records == 2
    (chunk,) = b.flush()
    assert chunk.tag == "t" and [r["i"] for r in records_of(chunk)] == [0, 2]


@pytest.mark.parametrize("encode_into", [True, None], ids=["msgspec", "msgpack"])
def test_max_record_bytes_refuses_before_adding(encode_into: Any) -> None:
    b = Batcher(max_records=1000, max_bytes=1 << 16, max_age=10, max_record_bytes=100,
                encode_into=encode_into)
    b.add("t", T, {"i": 0}, 0.0)
    with pytest.raises(ValueError, match="max_record_bytes"):
        b.add("t", T, {"i": 1, "pad": "x" * 200}, 0.0)
    (chunk,) = b.flush()
    assert [r["i"] for r in records_of(chunk)] == [0]


@pytest.mark.parametrize("encode_into", [True, None], ids=["msgspec", "msgpack"])
def test_surrogate_escaped_strs_take_the_tolerant_packer(encode_into: Any) -> None:
    odd = b"caf\xe9".decode("utf-8", "surrogateescape")
    b = Batcher(max_records=1000, max_bytes=1 << 16, max_age=10, encode_into=encode_into)
    b.add("t", T, {"i": 0}, 0.0)
    b.add("t", T, {"i": 1, "s": odd}, 0.0)
    (chunk,) = b.flush()
    recs = msgpack.Unpacker(io.BytesIO(chunk.payload), ext_hook=ext_hook,
                            unicode_errors="surrogateescape")
    assert [r for _, r in recs] == [{"i": 0}, {"i": 1, "s": odd}]


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
