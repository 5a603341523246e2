"""What a capture source hands to the capture core: the contract between eBPF/pcap and parsing.

A source (the eBPF loader, the pcap replayer, a test) produces these; the tracker consumes them.
Everything here is plain data: frozen, slotted, keyword-only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Direction(enum.Enum):
    """Which way the bytes went, seen from the process that was observed."""

    OUTBOUND = "outbound"  #: written/sent by the observed process
    INBOUND = "inbound"  #: read/received by the observed process


class Origin(enum.Enum):
    """How the observed process got the socket: decides client vs server role."""

    CONNECT = "connect"  #: the process called connect(): it is the client (egress)
    ACCEPT = "accept"  #: the process called accept(): it is the server (ingress)
    UNKNOWN = "unknown"  #: opened before capture started; guessed from the first bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Address:
    ip: str
    port: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DataEvent:
    """Bytes one process moved on one connection.

    ``real_len`` is how many bytes the call really moved; when it is larger than ``len(data)``
    the capture was truncated and the gap is ``real_len - len(data)`` bytes *after* ``data``.
    """

    conn_id: int
    pid: int
    tid: int
    exe: str
    direction: Direction
    local: Address | None
    remote: Address | None
    origin: Origin
    tls: bool
    ts_ns: int  #: wall-clock time, nanoseconds since the Unix epoch
    data: bytes
    real_len: int
    sni: str | None = None
    container_id: str | None = None

    @property
    def truncated(self) -> int:
        """How many bytes of this call were not captured (0 when complete)."""
        return max(0, self.real_len - len(self.data))


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseEvent:
    """The connection was closed by the observed process (or the source lost sight of it)."""

    conn_id: int
    pid: int
    ts_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LostEvent:
    """The source dropped ``count`` events (ring buffer full, decode failure, ...)."""

    count: int
    reason: str
    ts_ns: int


SourceEvent = DataEvent | CloseEvent | LostEvent
