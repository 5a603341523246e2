"""What the forward-protocol codec hands its caller: plain, immutable data.

The decoder turns bytes into these events; the transports (``server.py``, ``client.py``) act
on them. Nothing here does I/O. Times travel as :class:`EventTime` -- a ``(seconds,
nanoseconds)`` tuple -- whatever form the peer used on the wire (integer seconds, float,
EventTime ext), so a consumer never has to branch on the encoding.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

from qtap_fluent.errors import QtapFluentError


class ForwardProtocolError(QtapFluentError):
    """The peer broke the forward protocol (bad bytes, a limit exceeded, a failed handshake).

    The only exception the codec raises on input; a server closes that one connection, a
    client drops the connection and reconnects.
    """


class EventTime(NamedTuple):
    """Fluent's EventTime: seconds and nanoseconds since the epoch (msgpack ext type 0).

    Wire form: 8 bytes, big-endian uint32 seconds then uint32 nanoseconds (forward spec v1,
    "EventTime Ext Format"). Seconds ``0xFFFFFFFF``/``0xFFFFFFFE`` are Fluent Bit's group
    start/end markers (``flb_log_event_decoder.c``) and are passed through unchanged.
    """

    seconds: int
    nanoseconds: int

    @property
    def ns(self) -> int:
        """The time as integer nanoseconds since the epoch."""
        return self.seconds * 1_000_000_000 + self.nanoseconds

    @classmethod
    def from_ns(cls, ns: int) -> EventTime:
        """Build from integer nanoseconds since the epoch."""
        sec, nsec = divmod(ns, 1_000_000_000)
        return cls(sec, nsec)


#: Shared empty metadata for entries without any (read-only, so sharing is safe).
NO_METADATA: Mapping[str, Any] = MappingProxyType({})

#: One decoded record as handed to a consumer: ``(tag, time, record, metadata)``.
Entry = tuple[str, EventTime, Any, Mapping[Any, Any]]


class Mode(enum.Enum):
    """The carrier mode, chosen by the type of a request's second element (spec v1)."""

    MESSAGE = "message"
    FORWARD = "forward"
    PACKED_FORWARD = "packed_forward"
    COMPRESSED_PACKED_FORWARD = "compressed_packed_forward"


class Signal(enum.IntEnum):
    """``fluent_signal`` option values (spec v1.5; ``flb_input_chunk.h``). Absent means logs."""

    LOGS = 0
    METRICS = 1
    TRACES = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class EntriesReceived:
    """One transport request: a chunk of entries the consumer must accept before the ack.

    ``chunk`` is the option value exactly as received (str or bytes) or ``None`` when the peer
    wants no ack. ``wire_size`` is the frame's size in bytes; ``compressed`` names the codec
    used for CompressedPackedForward.
    """

    tag: str
    entries: list[Entry]
    mode: Mode
    chunk: str | bytes | None
    signal: int
    wire_size: int
    compressed: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat:
    """A bare msgpack ``nil`` request: keep-alive, nothing to do (spec v1 ``Request ::= nil``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Helo:
    """Server greeting when authentication is on: ``["HELO", {nonce, auth, keepalive}]``."""

    nonce: bytes
    auth: bytes
    keepalive: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping:
    """Client answer to HELO; every field as raw bytes (peers send str that may not be UTF-8)."""

    hostname: bytes
    shared_key_salt: bytes
    shared_key_digest: bytes
    username: bytes
    password_digest: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Pong:
    """Server verdict on PING: ``["PONG", auth_result, reason, server_hostname, digest]``."""

    auth_result: bool
    reason: str
    server_hostname: bytes
    shared_key_digest: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack:
    """Server response ``{"ack": chunk}`` confirming a chunk was accepted."""

    chunk: str | bytes


ServerSideEvent = EntriesReceived | Heartbeat | Ping
ClientSideEvent = Helo | Pong | Ack
