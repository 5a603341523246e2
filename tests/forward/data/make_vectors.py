"""Regenerate vectors.json: forward-protocol frames built byte by byte with plain msgpack.

Independent of qtap_fluent's encoder on purpose, so the decoder is checked against frames a
peer could send. Run ``python3 make_vectors.py`` from this directory; review the diff.
"""

from __future__ import annotations

import gzip
import json
import struct
from typing import Any

import msgpack
import zstandard


def et(sec: int, nsec: int) -> msgpack.ExtType:
    return msgpack.ExtType(0, struct.pack(">II", sec, nsec))


def ext8(sec: int, nsec: int) -> bytes:
    # EventTime as ext 8 (C7 08 00 ...) instead of fixext 8: allowed by the spec.
    return b"\xc7\x08\x00" + struct.pack(">II", sec, nsec)


def p(obj: Any) -> bytes:
    out: bytes = msgpack.packb(obj, use_bin_type=True)
    return out


def str32(data: bytes) -> bytes:
    # Fluentd's out_forward sends PackedForward entries as str32.
    return b"\xdb" + struct.pack(">I", len(data)) + data


REC1 = {"msg": "hello", "n": 1}
REC2 = {"request": {"url": "https://x/", "headers": {"a": "b"}}, "status": 200}
T1, T2 = (1700000000, 123456789), (1700000001, 0)
ENTRIES = p([et(*T1), REC1]) + p([et(*T2), REC2])


def v(name: str, frame: bytes, events: list[dict[str, Any]], note: str) -> dict[str, Any]:
    return {"name": name, "note": note, "hex": frame.hex(), "events": events}


def ev(tag: str, mode: str, entries: list[list[Any]], chunk: Any = None, signal: int = 0,
       compressed: str | None = None) -> dict[str, Any]:
    return {"type": "entries", "tag": tag, "mode": mode, "chunk": chunk, "signal": signal,
            "compressed": compressed, "entries": entries}


VECTORS = [
    v("message_int_time", p(["app", 1700000000, REC1]),
      [ev("app", "message", [[1700000000, 0, REC1, {}]])],
      "fluent-logger without nanosecond_precision"),
    v("message_eventtime_options", p(["app", et(*T1), REC1, {"chunk": "Y2h1bms=", "metadata": {"k": "v"}}]),
      [ev("app", "message", [[*T1, REC1, {"k": "v"}]], chunk="Y2h1bms=")],
      "Message mode with EventTime (fixext8), chunk and v1.5 metadata option"),
    v("message_eventtime_ext8", b"\x93" + p("app") + ext8(*T2) + p(REC2),
      [ev("app", "message", [[*T2, REC2, {}]])],
      "EventTime encoded as ext 8 with length 8"),
    v("message_float_time", p(["app", 1700000000.5, REC1]),
      [ev("app", "message", [[1700000000, 500000000, REC1, {}]])],
      "float seconds (old Fluentd loggers)"),
    v("forward_fluentbit_default", p(["fb", [[et(*T1), REC1], [et(*T2), REC2]]]),
      [ev("fb", "forward", [[*T1, REC1, {}], [*T2, REC2, {}]])],
      "Fluent Bit out_forward default: Forward mode, no options"),
    v("forward_v2_metadata_acks",
      p(["fb", [[[et(*T1), {"otlp": {"a": 1}}], REC1]], {"chunk": "q83vEjRWeJq83vEjRWeJqw==", "size": 1, "fluent_signal": 0}]),
      [ev("fb", "forward", [[*T1, REC1, {"otlp": {"a": 1}}]], chunk="q83vEjRWeJq83vEjRWeJqw==")],
      "Fluent Bit v2 entries [[time, metadata], record] with require_ack_response"),
    v("forward_group_marker", p(["fb", [[[et(0xFFFFFFFF, 0), {}], {}]]]),
      [ev("fb", "forward", [[0xFFFFFFFF, 0, {}, {}]])],
      "OTLP group start marker (seconds -1 as uint32) passes through"),
    v("packed_bin", p(["pk", ENTRIES, {"size": 2}]),
      [ev("pk", "packed_forward", [[*T1, REC1, {}], [*T2, REC2, {}]])],
      "PackedForward with entries as bin"),
    v("packed_str32_fluentd", b"\x93" + p("pk") + str32(ENTRIES) + p({"size": 2, "chunk": "VESFkVa4eEpn+/hwFcOpLw==\n"}),
      [ev("pk", "packed_forward", [[*T1, REC1, {}], [*T2, REC2, {}]], chunk="VESFkVa4eEpn+/hwFcOpLw==\n")],
      "Fluentd out_forward: entries in str32 (not UTF-8), chunk id ending in newline"),
    v("compressed_gzip_two_members",
      p(["gz", gzip.compress(p([et(*T1), REC1]), mtime=0) + gzip.compress(p([et(*T2), REC2]), mtime=0), {"compressed": "gzip", "size": 2}]),
      [ev("gz", "compressed_packed_forward", [[*T1, REC1, {}], [*T2, REC2, {}]], compressed="gzip")],
      "CompressedPackedForward, payload of two concatenated gzip members"),
    v("compressed_zstd", p(["zs", zstandard.ZstdCompressor().compress(ENTRIES), {"compressed": "zstd"}]),
      [ev("zs", "compressed_packed_forward", [[*T1, REC1, {}], [*T2, REC2, {}]], compressed="zstd")],
      "zstd payload (Fluent Bit in_forward >= 4.1)"),
    v("gzip_sniffed_without_option", p(["gz", gzip.compress(ENTRIES, mtime=0), {}]),
      [ev("gz", "compressed_packed_forward", [[*T1, REC1, {}], [*T2, REC2, {}]], compressed="gzip")],
      "gzip magic wins even without the compressed option (in_forward sniffs)"),
    v("nil_options_and_heartbeat", p(["d", [[1, {"x": 1}]], None]) + b"\xc0",
      [ev("d", "forward", [[1, 0, {"x": 1}, {}]]), {"type": "heartbeat"}],
      "nil options (Docker 18.x) then a nil heartbeat request"),
    v("metrics_signal", p(["m", ENTRIES, {"fluent_signal": 1}]),
      [ev("m", "packed_forward", [[*T1, REC1, {}], [*T2, REC2, {}]], signal=1)],
      "fluent_signal 1 (metrics)"),
]

ERRORS = [
    ("bin_tag", p([b"tag", 1, {}])),
    ("bool_second_element", p(["t", True, {}])),
    ("negative_time", p(["t", -1, {}])),
    ("record_not_map", p(["t", 1, [1, 2]])),
    ("options_not_map", p(["t", [[1, {}]], 5])),
    ("too_many_elements", p(["t", [[1, {}]], {}, {}])),
    ("entry_not_pair", p(["t", [[1, {}, 3]]])),
    ("eventtime_bad_len", p(["t", msgpack.ExtType(0, b"\0" * 7), {}])),
    ("eventtime_nsec_overflow", p(["t", msgpack.ExtType(0, struct.pack(">II", 1, 10**9)), {}])),
    ("truncated_gzip", p(["t", gzip.compress(ENTRIES)[:-6], {"compressed": "gzip"}])),
    ("garbage_zstd", p(["t", b"\x28\xb5\x2f\xfd" + b"\xff" * 20, {}])),
    ("packed_truncated_entry", p(["t", ENTRIES[:-3], {}])),
    ("unknown_compression", p(["t", ENTRIES, {"compressed": "lz4"}])),
    ("chunk_not_str", p(["t", ENTRIES, {"chunk": 5}])),
    ("signal_out_of_range", p(["t", ENTRIES, {"fluent_signal": 7}])),
    ("not_an_array", p({"a": 1})),
    ("reserved_byte", b"\xc1"),
]

if __name__ == "__main__":
    doc = {"vectors": VECTORS, "errors": [{"name": n, "hex": b.hex()} for n, b in ERRORS]}
    with open("vectors.json", "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")
