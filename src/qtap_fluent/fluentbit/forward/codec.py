"""Sans-I/O codec for the Fluent forward protocol (spec v1 and v1.5, as Fluent Bit speaks it).

Encoding lives in :mod:`.encode` (re-exported here for convenience).

Decoding (bytes in, events out; the caller owns sockets and clocks)::

    limits = codec.Limits()                     # in_forward's defaults
    reader = codec.ObjectReader(limits)
    reader.receive_data(data)
    while (item := reader.next_object()) is not None:
        obj, size = item
        event = codec.decode_request(obj, size, limits)   # EntriesReceived | Heartbeat

``connection.ServerConnection`` wraps this with the handshake state; most callers want that.

Decoding rules (Fluent Bit ``plugins/in_forward/fw_prot.c`` and the spec):

* The mode is chosen by the *type* of the request's second element: array = Forward, int /
  float / EventTime = Message, str or bin = (Compressed)PackedForward (a dict lookup).
* Strings are decoded as UTF-8 with ``surrogateescape``: peers put binary in msgpack ``str``
  (Fluentd's PackedForward payload is a str32, Fluent Bit's HELO nonce is random bytes), and
  ``s.encode("utf-8", "surrogateescape")`` gives those bytes back exactly.
* Entries may be ``[time, record]`` or Fluent Bit's v2 ``[[time, metadata], record]``.
* Payloads are decompressed when ``compressed`` is ``gzip`` or ``zstd`` or when the payload
  starts with the gzip/zstd magic (magic wins, as in in_forward); gzip may hold several members.
* Limits like in_forward's ``buffer_max_size`` (default 6,144,000 bytes) apply to the frame, the
  packed payload and the decompressed payload. Anything wrong raises
  :class:`~.events.ForwardProtocolError` and nothing else.
"""

from __future__ import annotations

import struct
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgpack
import zstandard

from .encode import (  # re-exported: codec.encode_message(...) etc.
    bin_header,
    compress,
    encode_ack,
    encode_forward,
    encode_message,
    encode_packed_forward,
    event_time_bytes,
    pack_entry,
    packb,
    packed_forward_parts,
    to_event_time,
)
from .events import (
    NO_METADATA,
    Ack,
    EntriesReceived,
    Entry,
    EventTime,
    ForwardProtocolError,
    Heartbeat,
    Helo,
    Mode,
    Ping,
    Pong,
)

#: in_forward's ``buffer_max_size`` default (``plugins/in_forward/fw.c`` config map).
DEFAULT_BUFFER_MAX_SIZE = 6_144_000

_II = struct.Struct(">II")
_new_tuple = tuple.__new__
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_MAX_NSEC = 999_999_999
__all__ = [
    "DEFAULT_BUFFER_MAX_SIZE", "DEFAULT_LIMITS", "Limits", "ObjectReader", "as_bytes",
    "bin_header", "compress", "decode_ping", "decode_request", "decode_response", "encode_ack",
    "encode_forward", "encode_message", "encode_packed_forward", "event_time_bytes", "ext_hook",
    "new_unpacker", "pack_entry", "packb", "packed_forward_parts", "to_event_time",
]

#: msgpack errors that mean "bad input" (FormatError, StackError, ExtraData and BufferFull
#: derive from ValueError; TypeError is an unhashable map key such as an array).
_MSGPACK_ERRORS = (ValueError, TypeError, msgpack.UnpackException, OverflowError)


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Per-connection size limits, all in bytes (in_forward applies one value to all three)."""

    max_frame: int = DEFAULT_BUFFER_MAX_SIZE
    max_payload: int = DEFAULT_BUFFER_MAX_SIZE
    max_decompressed: int = DEFAULT_BUFFER_MAX_SIZE


#: The defaults, shared (Limits is frozen).
DEFAULT_LIMITS = Limits()


# --------------------------------------------------------------------------- EventTime


def ext_hook(
    code: int, data: bytes, _unpack: Callable[[bytes], tuple[Any, ...]] = _II.unpack,
    _new: Callable[..., Any] = _new_tuple, _event_time: type = EventTime,
) -> Any:
    """msgpack ``ext_hook``: ext type 0 becomes :class:`EventTime`; other types stay ExtType.

    Rejects what Fluent Bit's ``flb_time_is_valid_eventtime`` rejects: a length other than 8 and
    nanoseconds above 999,999,999 (seconds are uint32 on the wire, so always in range).
    Called once per entry by the server's decoder: the valid case is checked first, with
    its helpers bound as defaults (no global lookups).
    """
    if code == 0 and len(data) == 8:
        t = _unpack(data)
        if t[1] <= 999_999_999:
            return _new(_event_time, t)
    if code == 0:
        if len(data) != 8:
            raise ForwardProtocolError(f"EventTime must carry 8 bytes, got {len(data)}")
        raise ForwardProtocolError(f"EventTime nanoseconds out of range: {_II.unpack(data)[1]}")
    return msgpack.ExtType(code, data)


# --------------------------------------------------------------------------- framing


def new_unpacker(max_size: int) -> msgpack.Unpacker:
    """A streaming Unpacker with the codec's string, ext and size rules."""
    return msgpack.Unpacker(
        raw=False,
        unicode_errors="surrogateescape",
        ext_hook=ext_hook,
        max_buffer_size=max_size,
        strict_map_key=True,  # str/bin keys only: no hash flooding through int keys
    )


class ObjectReader:
    """Splits a byte stream into msgpack objects, never buffering more than ``max_frame``.

    ``receive_data(b"")`` marks end of stream. ``next_object()`` returns ``(obj, size)`` or
    ``None`` when more bytes are needed; it raises :class:`ForwardProtocolError` on malformed
    input, on a frame larger than the limit and on end of stream inside a frame.
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self._max = limits.max_frame
        self._unpacker = new_unpacker(limits.max_frame)
        self._pending: deque[memoryview] = deque()
        self._fed = 0  # bytes handed to the Unpacker so far
        self._frame_start = 0  # stream offset where the current frame began
        self.last_frame_offset = 0  #: stream offset of the frame last returned
        self._eof = False
        self._error: ForwardProtocolError | None = None

    def receive_data(self, data: bytes) -> None:
        """Queue bytes from the peer; empty bytes means the peer closed."""
        if data:
            self._pending.append(memoryview(data))
        else:
            self._eof = True

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as objects."""
        return self._fed - self._frame_start + sum(len(m) for m in self._pending)

    def next_object(self) -> tuple[Any, int] | None:
        """The next complete object and its size in bytes, or ``None`` for "need data"."""
        if self._error is not None:
            raise self._error
        try:
            return self._next()
        except ForwardProtocolError as exc:
            self._error = ForwardProtocolError(f"{exc} (frame at byte {self._frame_start})")
        except _MSGPACK_ERRORS as exc:
            self._error = ForwardProtocolError(
                f"malformed msgpack: {exc} (frame at byte {self._frame_start})"
            )
        raise self._error

    def _next(self) -> tuple[Any, int] | None:
        unpacker = self._unpacker
        while True:
            try:
                obj = unpacker.unpack()
            except msgpack.OutOfData:
                if not self._feed():
                    if self._eof and self._fed > self._frame_start:
                        raise ForwardProtocolError("connection closed inside a frame") from None
                    return None
                continue
            end = int(unpacker.tell())
            size = end - self._frame_start
            self.last_frame_offset, self._frame_start = self._frame_start, end
            return obj, size

    def _feed(self) -> bool:
        if not self._pending:
            return False
        # The Unpacker resumes partial objects (``tell()`` moves inside a frame), so the frame
        # so far is everything fed since the end of the previous object.
        room = self._max - (self._fed - self._frame_start)
        if room <= 0:
            raise ForwardProtocolError(f"frame larger than {self._max} bytes")
        piece = self._pending[0]
        if len(piece) > room:
            self._pending[0] = piece[room:]
            piece = piece[:room]
        else:
            self._pending.popleft()
        self._unpacker.feed(piece)
        self._fed += len(piece)
        return True


# --------------------------------------------------------------------------- requests


def _mode_of(second: Any) -> Mode:
    mode = _MODE_BY_TYPE.get(type(second))
    if mode is None:
        raise ForwardProtocolError(
            f"second element of type {type(second).__name__} names no forward mode"
        )
    return mode


#: Mode by type of the second request element (spec v1 "Server detects the carrier mode").
_MODE_BY_TYPE: dict[type, Mode] = {
    list: Mode.FORWARD,
    int: Mode.MESSAGE,
    float: Mode.MESSAGE,
    EventTime: Mode.MESSAGE,
    bytes: Mode.PACKED_FORWARD,
    str: Mode.PACKED_FORWARD,
}


def _get_options(obj: list[Any], index: int) -> dict[Any, Any]:
    if len(obj) <= index:
        return {}
    if len(obj) > index + 1:
        raise ForwardProtocolError(f"request has {len(obj)} elements, at most {index + 1}")
    opts = obj[index]
    if opts is None:  # tolerated by in_forward: Docker 18.x sends nil options
        return {}
    if type(opts) is not dict:
        raise ForwardProtocolError(f"options must be a map, got {type(opts).__name__}")
    return opts


def _chunk_of(opts: dict[Any, Any]) -> str | bytes | None:
    chunk = opts.get("chunk")
    if chunk is None or type(chunk) in (str, bytes):
        return chunk
    raise ForwardProtocolError(f"option chunk must be str, got {type(chunk).__name__}")


def _signal_of(opts: dict[Any, Any]) -> int:
    signal = opts.get("fluent_signal", 0)
    if type(signal) is not int or not 0 <= signal <= 2:
        raise ForwardProtocolError(f"fluent_signal must be 0, 1 or 2, got {signal!r}")
    return signal


def decode_request(obj: Any, size: int, limits: Limits) -> EntriesReceived | Heartbeat:
    """Turn one decoded top-level object into a transport event (or raise)."""
    if obj is None:
        return Heartbeat()
    if type(obj) is not list or len(obj) < 2:
        raise ForwardProtocolError("a request must be an array of at least 2 elements")
    tag = obj[0]
    if type(tag) is not str:
        raise ForwardProtocolError(f"tag must be str, got {type(tag).__name__}")
    mode = _mode_of(obj[1])
    return _DECODERS[mode](tag, obj, size, limits)


def _decode_message(tag: str, obj: list[Any], size: int, limits: Limits) -> EntriesReceived:
    if len(obj) < 3:
        raise ForwardProtocolError("Message mode needs [tag, time, record]")
    opts = _get_options(obj, 3)
    record = obj[2]
    if type(record) is not dict:
        raise ForwardProtocolError(f"record must be a map, got {type(record).__name__}")
    meta = opts.get("metadata")
    if meta is None:
        meta = NO_METADATA
    elif type(meta) is not dict:
        raise ForwardProtocolError("option metadata must be a map")
    entry: Entry = (tag, to_event_time(obj[1]), record, meta)
    return EntriesReceived(
        tag=tag, entries=[entry], mode=Mode.MESSAGE, chunk=_chunk_of(opts),
        signal=_signal_of(opts), wire_size=size,
    )


def _decode_forward(tag: str, obj: list[Any], size: int, limits: Limits) -> EntriesReceived:
    opts = _get_options(obj, 2)
    signal = _signal_of(opts)
    entries: list[Entry] = []
    _collect(tag, obj[1], entries, signal)
    return EntriesReceived(
        tag=tag, entries=entries, mode=Mode.FORWARD, chunk=_chunk_of(opts), signal=signal,
        wire_size=size,
    )


def _decode_packed(tag: str, obj: list[Any], size: int, limits: Limits) -> EntriesReceived:
    opts = _get_options(obj, 2)
    signal = _signal_of(opts)
    payload = obj[1]
    if type(payload) is str:  # Fluentd sends str32: take back the exact bytes
        payload = payload.encode("utf-8", "surrogateescape")
    if len(payload) > limits.max_payload:
        raise ForwardProtocolError(f"packed payload larger than {limits.max_payload} bytes")
    codec = _compression_of(payload, opts)
    mode = Mode.PACKED_FORWARD
    if codec is not None:
        payload = _DECOMPRESSORS[codec](payload, limits.max_decompressed)
        mode = Mode.COMPRESSED_PACKED_FORWARD
    entries: list[Entry] = []
    unpacker = new_unpacker(max(1, len(payload)))
    try:
        unpacker.feed(payload)
        _collect(tag, unpacker, entries, signal)
    except _MSGPACK_ERRORS as exc:
        raise ForwardProtocolError(f"malformed packed entries: {exc}") from None
    if unpacker.tell() != len(payload):
        raise ForwardProtocolError("packed payload ends inside an entry")
    return EntriesReceived(
        tag=tag, entries=entries, mode=mode, chunk=_chunk_of(opts), signal=signal,
        wire_size=size, compressed=codec,
    )


_DECODERS: dict[Mode, Callable[[str, list[Any], int, Limits], EntriesReceived]] = {
    Mode.MESSAGE: _decode_message,
    Mode.FORWARD: _decode_forward,
    Mode.PACKED_FORWARD: _decode_packed,
}


def _collect(tag: str, items: Iterable[Any], out: list[Entry], signal: int) -> None:
    """Append ``(tag, time, record, metadata)`` for every entry; the hot loop of the server.

    The common entry, ``[EventTime, map]``, takes three type checks and one append; every
    other shape goes through :func:`_entry`.
    """
    append = out.append
    no_meta = NO_METADATA
    for entry in items:
        if type(entry) is list and len(entry) == 2:
            t, record = entry
            if type(t) is EventTime and type(record) is dict:
                append((tag, t, record, no_meta))
                continue
        append(_entry(tag, entry, signal))


def _entry(tag: str, entry: Any, signal: int) -> Entry:
    """One entry of any legal shape: ``[time, record]`` with an int/float time, Fluent Bit's
    v2 ``[[time, metadata], record]``, a non-map record in a signal (metrics/traces) request."""
    if type(entry) is not list or len(entry) != 2:
        raise ForwardProtocolError("an entry must be a 2-element array [time, record]")
    t, record = entry
    meta: Mapping[Any, Any] = NO_METADATA
    if type(t) is not EventTime:
        if type(t) is list:  # Fluent Bit v2 entry: [[time, metadata], record]
            if len(t) != 2 or type(t[1]) is not dict:
                raise ForwardProtocolError("metadata entry must be [[time, map], record]")
            t, meta = t
        t = to_event_time(t)
    if type(record) is not dict and signal == 0:
        raise ForwardProtocolError(f"record must be a map, got {type(record).__name__}")
    return (tag, t, record, meta)


def _compression_of(payload: bytes, opts: dict[Any, Any]) -> str | None:
    # Magic bytes win over the option, as in in_forward's ``get_compression_type``.
    if payload[:2] == _GZIP_MAGIC:
        return "gzip"
    if payload[:4] == _ZSTD_MAGIC:
        return "zstd"
    codec = opts.get("compressed")
    if codec is None or codec == "text":
        return None
    if codec in ("gzip", "zstd"):
        return str(codec)
    raise ForwardProtocolError(f"unknown compression {codec!r}")


def _gunzip(data: bytes, limit: int) -> bytes:
    """Decompress one or more concatenated gzip members (spec v1), at most ``limit`` bytes."""
    out: list[bytes] = []
    total = 0
    try:
        while data:
            d = zlib.decompressobj(wbits=31)
            part = d.decompress(data, limit - total + 1)
            total += len(part)
            if total > limit or d.unconsumed_tail:
                raise ForwardProtocolError(f"decompressed payload larger than {limit} bytes")
            if not d.eof:
                raise ForwardProtocolError("gzip payload is truncated")
            out.append(part)
            data = d.unused_data
    except zlib.error as exc:
        raise ForwardProtocolError(f"bad gzip payload: {exc}") from None
    return b"".join(out)


def _unzstd(data: bytes, limit: int) -> bytes:
    """Decompress zstd frames (Fluent Bit in_forward accepts zstd since v4.1.0)."""
    out: list[bytes] = []
    total = 0
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
        while part := reader.read(min(1 << 20, limit - total + 1)):
            total += len(part)
            if total > limit:
                raise ForwardProtocolError(f"decompressed payload larger than {limit} bytes")
            out.append(part)
    except zstandard.ZstdError as exc:
        raise ForwardProtocolError(f"bad zstd payload: {exc}") from None
    return b"".join(out)


_DECOMPRESSORS: dict[str, Callable[[bytes, int], bytes]] = {"gzip": _gunzip, "zstd": _unzstd}


# --------------------------------------------------------------------------- handshake/replies


def as_bytes(value: Any, what: str) -> bytes:
    """A field peers send as str or bin, as the exact bytes."""
    if type(value) is bytes:
        return value
    if type(value) is str:
        return value.encode("utf-8", "surrogateescape")
    raise ForwardProtocolError(f"{what} must be str or bin, got {type(value).__name__}")


def decode_ping(obj: Any) -> Ping:
    """``["PING", hostname, salt, digest, username, password_digest]`` (spec v1)."""
    if type(obj) is not list or len(obj) != 6 or obj[0] != "PING":
        raise ForwardProtocolError("expected PING [\"PING\", host, salt, digest, user, password]")
    host, salt, digest, user, password = (as_bytes(v, "PING field") for v in obj[1:])
    return Ping(
        hostname=host, shared_key_salt=salt, shared_key_digest=digest, username=user,
        password_digest=password,
    )


def decode_response(obj: Any) -> Helo | Pong | Ack:
    """What a client reads: ``{"ack": id}``, ``["HELO", {...}]`` or ``["PONG", ...]``."""
    if type(obj) is dict:
        chunk = obj.get("ack")
        if not isinstance(chunk, (str, bytes)):
            raise ForwardProtocolError("ack response without a str \"ack\" value")
        return Ack(chunk=chunk)
    if type(obj) is list and len(obj) == 2 and obj[0] == "HELO" and type(obj[1]) is dict:
        opts = obj[1]
        keepalive = opts.get("keepalive", True)
        return Helo(
            nonce=as_bytes(opts.get("nonce"), "HELO nonce"),
            auth=as_bytes(opts.get("auth", b""), "HELO auth"),
            keepalive=keepalive if type(keepalive) is bool else True,
        )
    if type(obj) is list and len(obj) == 5 and obj[0] == "PONG":
        _, ok, reason, host, digest = obj
        if type(ok) is not bool or type(reason) is not str:
            raise ForwardProtocolError("PONG needs [\"PONG\", bool, reason, host, digest]")
        return Pong(
            auth_result=ok, reason=reason, server_hostname=as_bytes(host, "PONG host"),
            shared_key_digest=as_bytes(digest, "PONG digest"),
        )
    raise ForwardProtocolError(f"unexpected response {str(obj)[:80]!r}")
