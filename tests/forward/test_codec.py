"""The sans-I/O codec: golden vectors, every mode, limits, split invariance and fuzzing."""

from __future__ import annotations

import gzip
import itertools
import json
import struct
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qtap_fluent.errors import QtapFluentError
from qtap_fluent.fluentbit.forward import codec
from qtap_fluent.fluentbit.forward.codec import DEFAULT_LIMITS, Limits
from qtap_fluent.fluentbit.forward.connection import ServerConnection
from qtap_fluent.fluentbit.forward.events import (
    Ack,
    EntriesReceived,
    EventTime,
    ForwardProtocolError,
    Heartbeat,
    Mode,
)

DATA = json.loads((Path(__file__).parent / "data" / "vectors.json").read_text())
VECTORS = {v["name"]: v for v in DATA["vectors"]}
ERRORS = {e["name"]: bytes.fromhex(e["hex"]) for e in DATA["errors"]}


def decode_all(chunks: list[bytes], limits: Limits = DEFAULT_LIMITS) -> list[Any]:
    """Feed ``chunks`` one by one (draining events after each) and return comparable events."""
    conn = ServerConnection(limits)
    out: list[Any] = []
    for piece in [*chunks, b""]:
        conn.receive_data(piece)
        while (event := conn.next_event()) is not None:
            out.append(_plain(event))
    return out


def _plain(event: Any) -> dict[str, Any]:
    if isinstance(event, Heartbeat):
        return {"type": "heartbeat"}
    assert isinstance(event, EntriesReceived)
    return {
        "type": "entries", "tag": event.tag, "mode": event.mode.value, "chunk": event.chunk,
        "signal": event.signal, "compressed": event.compressed,
        "entries": [[t.seconds, t.nanoseconds, rec, dict(meta)]
                    for tag, t, rec, meta in event.entries],
    }


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_golden_vector_whole(name: str) -> None:
    vec = VECTORS[name]
    assert decode_all([bytes.fromhex(vec["hex"])]) == vec["events"]


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_golden_vector_byte_by_byte(name: str) -> None:
    data = bytes.fromhex(VECTORS[name]["hex"])
    assert decode_all([data[i:i + 1] for i in range(len(data))]) == VECTORS[name]["events"]


ALL_BYTES = b"".join(bytes.fromhex(v["hex"]) for v in DATA["vectors"])
ALL_EVENTS = [e for v in DATA["vectors"] for e in v["events"]]


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(ALL_BYTES)), max_size=40))
def test_random_cuts_give_the_same_events(cuts: list[int]) -> None:
    points = [0, *sorted(cuts), len(ALL_BYTES)]
    # (empty pieces are skipped: receive_data(b"") means end of stream, as in h11)
    pieces = [ALL_BYTES[a:b] for a, b in itertools.pairwise(points) if b > a]
    assert decode_all(pieces) == ALL_EVENTS


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_bad_requests_raise_the_protocol_error(name: str) -> None:
    with pytest.raises(ForwardProtocolError):
        decode_all([ERRORS[name]])


def test_protocol_error_is_a_project_error() -> None:
    assert issubclass(ForwardProtocolError, QtapFluentError)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_bytes_only_raise_the_protocol_error(data: bytes) -> None:
    try:
        decode_all([data], Limits(max_frame=4096, max_payload=4096, max_decompressed=4096))
    except ForwardProtocolError:
        pass


MSGPACK_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    | st.text(max_size=8) | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                  max_size=4),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None)
@given(st.lists(MSGPACK_VALUES, min_size=1, max_size=4))
def test_fuzz_wellformed_msgpack_only_raises_the_protocol_error(values: list[Any]) -> None:
    # Structured fuzz: valid msgpack of the wrong shapes (mode confusion, odd options).
    data = b"".join(msgpack.packb(["t", *values][: 1 + len(values)]) for _ in range(1))
    try:
        decode_all([data])
    except ForwardProtocolError:
        pass


def test_encoders_round_trip_every_mode() -> None:
    t = EventTime(1700000000, 42)
    entries = [(t, {"i": i}) for i in range(3)]
    payload = b"".join(codec.pack_entry(tt, rec) for tt, rec in entries)
    frames = [
        codec.encode_message("m", t, {"i": 0}, chunk="c1", metadata={"k": 1}),
        codec.encode_forward("f", entries, chunk="c2", with_size=True),
        codec.encode_packed_forward("p", payload, size=3, chunk="c3"),
        codec.encode_packed_forward("g", codec.compress(payload, "gzip"), size=3,
                                    compressed="gzip"),
        codec.encode_packed_forward("z", codec.compress(payload, "zstd"), size=3,
                                    compressed="zstd", as_str=True),
        codec.encode_packed_forward("meta", codec.pack_entry(t, {"a": 1}, {"m": 2})),
    ]
    events = decode_all([b"".join(frames)])
    assert [e["mode"] for e in events] == [
        "message", "forward", "packed_forward", "compressed_packed_forward",
        "compressed_packed_forward", "packed_forward",
    ]
    assert [e["chunk"] for e in events] == ["c1", "c2", "c3", None, None, None]
    assert events[0]["entries"] == [[1700000000, 42, {"i": 0}, {"k": 1}]]
    for e in events[1:5]:
        assert [r for _, _, r, _ in e["entries"]] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert events[5]["entries"] == [[1700000000, 42, {"a": 1}, {"m": 2}]]


def test_eventtime_is_fixext8_and_ext8_decodes() -> None:
    assert codec.event_time_bytes(EventTime(1, 2)) == b"\xd7\x00" + struct.pack(">II", 1, 2)
    frame = b"\x93\xa1t\xc7\x08\x00" + struct.pack(">II", 5, 6) + b"\x80"
    (event,) = decode_all([frame])
    assert event["entries"][0][:2] == [5, 6]


def test_ack_echoes_the_chunk_byte_for_byte() -> None:
    weird = b"\xff\xfe-not-utf8".decode("utf-8", "surrogateescape")
    assert codec.encode_ack("abc\n") == b"\x81\xa3ack\xa4abc\n"
    assert msgpack.unpackb(codec.encode_ack(weird), raw=True) == {b"ack": b"\xff\xfe-not-utf8"}
    assert codec.decode_response(msgpack.unpackb(codec.encode_ack("x"))) == Ack(chunk="x")


def test_str_chunk_with_invalid_utf8_round_trips() -> None:
    frame = b"\x93\xa1t" + msgpack.packb([[1, {}]]) + b"\x81\xa5chunk\xa2\xff\x00"
    conn = ServerConnection()
    conn.receive_data(frame)
    event = conn.next_event()
    assert isinstance(event, EntriesReceived) and event.chunk is not None
    assert codec.encode_ack(event.chunk) == b"\x81\xa3ack\xa2\xff\x00"


def test_frame_limit_closes() -> None:
    big = msgpack.packb(["t", 1, {"x": "y" * 5000}])
    with pytest.raises(ForwardProtocolError, match="larger than 4096"):
        decode_all([big], Limits(max_frame=4096))
    # exactly at the limit is fine
    assert decode_all([big], Limits(max_frame=len(big)))[0]["tag"] == "t"


def test_payload_limit_closes() -> None:
    payload = codec.pack_entry(1, {"x": "y" * 3000})
    frame = codec.encode_packed_forward("t", payload)
    with pytest.raises(ForwardProtocolError, match="packed payload larger"):
        decode_all([frame], Limits(max_payload=1000))


def test_decompressed_limit_closes_a_gzip_bomb() -> None:
    payload = b"".join(codec.pack_entry(1, {"x": "0" * 10000}) for _ in range(100))
    small = gzip.compress(payload)
    assert len(small) < 10_000
    limits = Limits(max_frame=20_000, max_payload=20_000, max_decompressed=100_000)
    for data in (small, codec.compress(payload, "zstd")):
        frame = codec.encode_packed_forward("t", data, compressed="gzip")
        with pytest.raises(ForwardProtocolError, match="decompressed payload larger"):
            decode_all([frame], limits)


def test_default_limit_is_in_forward_buffer_max_size() -> None:
    assert Limits().max_frame == Limits().max_decompressed == 6_144_000


def test_many_small_frames_in_one_read() -> None:
    frames = b"".join(codec.encode_message("t", i, {"i": i}) for i in range(2000))
    events = decode_all([frames], Limits(max_frame=1000))
    assert [e["entries"][0][2]["i"] for e in events] == list(range(2000))


def test_eof_inside_a_frame_is_an_error() -> None:
    frame = codec.encode_message("t", 1, {"a": 1})
    with pytest.raises(ForwardProtocolError, match="inside a frame"):
        decode_all([frame[:-1]])


def test_decoder_stays_failed_after_an_error() -> None:
    conn = ServerConnection()
    conn.receive_data(b"\xc1")
    with pytest.raises(ForwardProtocolError):
        conn.next_event()
    conn.receive_data(codec.encode_message("t", 1, {}))
    with pytest.raises(ForwardProtocolError):
        conn.next_event()


def test_mode_enum_names_the_four_modes() -> None:
    assert {m.value for m in Mode} == {
        "message", "forward", "packed_forward", "compressed_packed_forward"}


def test_frame_limit_counts_partially_decoded_frames() -> None:
    # Many tiny entries: msgpack resumes partial arrays, so the limit must count every byte
    # since the frame began, not only what sits in the Unpacker's buffer.
    frame = msgpack.packb(["t", [[1, {}]] * 3000])
    pieces = [frame[i:i + 512] for i in range(0, len(frame), 512)]
    with pytest.raises(ForwardProtocolError, match="larger than 4096"):
        decode_all(pieces, Limits(max_frame=4096))


def test_errors_say_where_in_the_stream() -> None:
    good = codec.encode_message("t", 1, {"a": 1}) * 2
    with pytest.raises(ForwardProtocolError, match=f"frame at byte {len(good)}"):
        decode_all([good + b"\xc1"])
    with pytest.raises(ForwardProtocolError, match=f"request at byte {len(good)}"):
        decode_all([good + msgpack.packb([b"bin-tag", 1, {}])])
