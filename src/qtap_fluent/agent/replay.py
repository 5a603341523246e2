"""Replay source: TCP streams reassembled from pcap / pcapng files into ``agent.events``.

Pure parsing over bytes (``events_from_bytes``) plus a file wrapper. Supports the classic pcap
format (µs and ns magic, either byte order) and pcapng (SHB/IDB/EPB/SPB/OPB, per-interface
``if_tsresol``); link types Ethernet (with 802.1Q tags), Linux cooked SLL and SLL2, raw IP and
BSD loopback; IPv4 and IPv6. TCP reassembly follows sequence numbers (32-bit wrap-around):
retransmitted bytes are trimmed, out-of-order segments wait (bounded), and a hole that never
fills becomes an explicit gap (a DataEvent whose ``real_len`` exceeds its data). A SYN without
ACK names the client: its side is the observed process (origin CONNECT). Streams whose SYN was
not captured start with origin UNKNOWN and the core decides roles from the first bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from qtap_fluent.agent.events import (
    Address,
    CloseEvent,
    DataEvent,
    Direction,
    Origin,
    SourceEvent,
)
from qtap_fluent.errors import QtapFluentError

#: Out-of-order bytes held per direction before the hole is declared lost.
MAX_OUT_OF_ORDER = 1 << 20
_MOD = 1 << 32


class ReplayError(QtapFluentError):
    """The capture file cannot be read (not pcap/pcapng, truncated header, unknown link)."""


# -- link and network layers -------------------------------------------------------------------

def _ethernet(frame: bytes) -> tuple[int, bytes] | None:
    if len(frame) < 14:
        return None
    etype = int.from_bytes(frame[12:14], "big")
    off = 14
    while etype in (0x8100, 0x88A8) and len(frame) >= off + 4:  # 802.1Q / 802.1ad tags
        etype = int.from_bytes(frame[off + 2:off + 4], "big")
        off += 4
    return etype, frame[off:]


def _sll(frame: bytes) -> tuple[int, bytes] | None:
    return (int.from_bytes(frame[14:16], "big"), frame[16:]) if len(frame) >= 16 else None


def _sll2(frame: bytes) -> tuple[int, bytes] | None:
    return (int.from_bytes(frame[0:2], "big"), frame[20:]) if len(frame) >= 20 else None


def _raw(frame: bytes) -> tuple[int, bytes] | None:
    if not frame:
        return None
    return (0x0800 if frame[0] >> 4 == 4 else 0x86DD), frame


def _null(frame: bytes) -> tuple[int, bytes] | None:
    if len(frame) < 4:
        return None
    family = int.from_bytes(frame[:4], "little")
    if family > 0xFFFF:
        family = int.from_bytes(frame[:4], "big")
    return (0x0800 if family == 2 else 0x86DD), frame[4:]


#: pcap LINKTYPE_* -> decoder giving (ethertype, network-layer bytes).
LINK_TYPES = {1: _ethernet, 113: _sll, 276: _sll2, 101: _raw, 12: _raw, 228: _raw, 229: _raw,
              0: _null}


@dataclass(frozen=True, slots=True)
class Segment:
    ts_ns: int
    src: Address
    dst: Address
    seq: int
    flags: int
    payload: bytes


_FIN, _SYN, _RST, _ACK = 0x01, 0x02, 0x04, 0x10


def _ipv4(pkt: bytes) -> tuple[str, str, bytes] | None:
    if len(pkt) < 20:
        return None
    ihl = (pkt[0] & 0x0F) * 4
    total = int.from_bytes(pkt[2:4], "big")
    if pkt[9] != 6 or int.from_bytes(pkt[6:8], "big") & 0x3FFF:  # not TCP, or a fragment
        return None
    src = ".".join(str(b) for b in pkt[12:16])
    dst = ".".join(str(b) for b in pkt[16:20])
    return src, dst, pkt[ihl:total if total else len(pkt)]


def _v6(raw: bytes) -> str:
    import ipaddress

    return str(ipaddress.IPv6Address(raw))


def _ipv6(pkt: bytes) -> tuple[str, str, bytes] | None:
    if len(pkt) < 40:
        return None
    nxt, off = pkt[6], 40
    end = 40 + int.from_bytes(pkt[4:6], "big")
    while nxt in (0, 43, 60) and len(pkt) >= off + 8:  # hop-by-hop, routing, dest options
        nxt, off = pkt[off], off + (pkt[off + 1] + 1) * 8
    if nxt != 6:
        return None  # not TCP (fragments included)
    return _v6(pkt[8:24]), _v6(pkt[24:40]), pkt[off:end]


def tcp_segment(linktype: int, frame: bytes, ts_ns: int) -> Segment | None:
    """Decode one captured frame into a TCP segment (None for anything else)."""
    link = LINK_TYPES.get(linktype)
    if link is None:
        raise ReplayError(f"unsupported link type {linktype}")
    net = link(frame)
    if net is None:
        return None
    etype, pkt = net
    ip = _ipv4(pkt) if etype == 0x0800 else _ipv6(pkt) if etype == 0x86DD else None
    if ip is None or len(ip[2]) < 20:
        return None
    src, dst, tcp = ip
    sport, dport, seq = struct.unpack_from("!HHI", tcp)
    doff = (tcp[12] >> 4) * 4
    return Segment(ts_ns, Address(ip=src, port=sport), Address(ip=dst, port=dport), seq,
                   tcp[13], bytes(tcp[doff:]))


# -- capture file formats ------------------------------------------------------------------------

def _pcap_frames(data: bytes) -> Iterator[tuple[int, bytes, int]]:
    magic = data[:4]
    table = {b"\xd4\xc3\xb2\xa1": ("<", 1000), b"\xa1\xb2\xc3\xd4": (">", 1000),
             b"\x4d\x3c\xb2\xa1": ("<", 1), b"\xa1\xb2\x3c\x4d": (">", 1)}
    endian, scale = table[magic]
    if len(data) < 24:
        raise ReplayError("truncated pcap header")
    linktype = struct.unpack_from(endian + "I", data, 20)[0] & 0x0FFFFFFF
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack_from(endian + "IIII", data, pos)
        pos += 16
        yield linktype, data[pos:pos + incl], sec * 1_000_000_000 + frac * scale
        pos += incl


def _tsresol(options: bytes, endian: str) -> int:
    """Nanoseconds per tick from an IDB's options (``if_tsresol``, code 9); default µs."""
    pos = 0
    while pos + 4 <= len(options):
        code, length = struct.unpack_from(endian + "HH", options, pos)
        if code == 0:
            break
        if code == 9 and length >= 1:
            v: int = options[pos + 4]
            per_sec: int = (1 << (v & 0x7F)) if v & 0x80 else 10 ** v
            return max(1, 1_000_000_000 // per_sec)
        pos += 4 + (length + 3) // 4 * 4
    return 1000


def _pcapng_frames(data: bytes) -> Iterator[tuple[int, bytes, int]]:
    endian = "<"
    interfaces: list[tuple[int, int]] = []  # (linktype, ns per tick)
    pos = 0
    while pos + 12 <= len(data):
        btype = struct.unpack_from(endian + "I", data, pos)[0]
        if btype == 0x0A0D0D0A:  # section header: byte order may change per section
            endian = "<" if data[pos + 8:pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            interfaces = []
        blen = struct.unpack_from(endian + "I", data, pos + 4)[0]
        if blen < 12 or pos + blen > len(data):
            break  # truncated file: stop at the last whole block
        body = data[pos + 8:pos + blen - 4]
        if btype == 1:
            linktype = struct.unpack_from(endian + "H", body, 0)[0]
            interfaces.append((linktype, _tsresol(body[8:], endian)))
        elif btype in (6, 2):  # enhanced / obsolete packet block
            if btype == 6:
                iface, hi, lo, cap, _ = struct.unpack_from(endian + "IIIII", body, 0)
            else:
                iface, _drops, hi, lo, cap, _ = struct.unpack_from(endian + "HHIIII", body, 0)
            if iface < len(interfaces):
                linktype, tick = interfaces[iface]
                yield linktype, body[20:20 + cap], ((hi << 32) | lo) * tick
        elif btype == 3 and interfaces:  # simple packet block: no timestamp
            orig = struct.unpack_from(endian + "I", body, 0)[0]
            yield interfaces[0][0], body[4:4 + orig], 0
        pos += blen


def frames(data: bytes) -> Iterator[tuple[int, bytes, int]]:
    """(linktype, frame, ts_ns) for every packet of a pcap or pcapng file's bytes."""
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        return _pcapng_frames(data)
    if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
                    b"\xa1\xb2\x3c\x4d"):
        return _pcap_frames(data)
    raise ReplayError("not a pcap or pcapng file (unknown magic number)")


# -- TCP reassembly ------------------------------------------------------------------------------

class _Half:
    __slots__ = ("fin", "held", "held_bytes", "next")

    def __init__(self) -> None:
        self.next: int | None = None
        self.held: dict[int, bytes] = {}
        self.held_bytes = 0
        self.fin = False


class _Stream:
    __slots__ = ("client", "conn_id", "halves", "local", "origin", "remote")

    def __init__(self, conn_id: int, local: Address, remote: Address, origin: Origin) -> None:
        self.conn_id = conn_id
        self.local = local  #: the observed process's side (the client when the SYN was seen)
        self.remote = remote
        self.origin = origin
        self.halves = {Direction.OUTBOUND: _Half(), Direction.INBOUND: _Half()}


class Reassembler:
    """TCP segments in capture order -> DataEvents and CloseEvents."""

    def __init__(self, max_out_of_order: int = MAX_OUT_OF_ORDER) -> None:
        self.max_out_of_order = max_out_of_order
        self.streams: dict[tuple[Address, Address], _Stream] = {}
        self._next_id = 0

    def _stream(self, seg: Segment) -> tuple[_Stream, Direction]:
        st = self.streams.get((seg.src, seg.dst))
        if st is not None:
            return st, Direction.OUTBOUND
        st = self.streams.get((seg.dst, seg.src))
        if st is not None:
            return st, Direction.INBOUND
        self._next_id += 1
        syn_only = seg.flags & _SYN and not seg.flags & _ACK
        syn_ack = seg.flags & _SYN and seg.flags & _ACK
        if syn_ack:  # the server's answer seen first: the other side is the client
            st = _Stream(self._next_id, seg.dst, seg.src, Origin.CONNECT)
            self.streams[(seg.dst, seg.src)] = st
            return st, Direction.INBOUND
        st = _Stream(self._next_id, seg.src, seg.dst,
                     Origin.CONNECT if syn_only else Origin.UNKNOWN)
        self.streams[(seg.src, seg.dst)] = st
        return st, Direction.OUTBOUND

    def feed(self, seg: Segment) -> list[SourceEvent]:
        st, direction = self._stream(seg)
        half = st.halves[direction]
        out: list[SourceEvent] = []
        seq = seg.seq
        if seg.flags & _SYN:
            half.next = (seq + 1) % _MOD
            seq = (seq + 1) % _MOD
        elif half.next is None:
            half.next = seq
        if seg.payload:
            self._segment(st, direction, half, seq, seg.payload, seg.ts_ns, out)
        if seg.flags & _FIN:
            half.fin = True
        if seg.flags & _RST or all(h.fin for h in st.halves.values()):
            out += self._close(st, seg.ts_ns)
        return out

    def _segment(self, st: _Stream, direction: Direction, half: _Half, seq: int, data: bytes,
                 ts: int, out: list[SourceEvent]) -> None:
        assert half.next is not None
        ahead = (seq - half.next) % _MOD
        if ahead >= _MOD // 2:  # starts before what we have: trim the retransmitted part
            behind = _MOD - ahead
            if behind >= len(data):
                return
            data, seq = data[behind:], half.next
            ahead = 0
        if ahead:
            if seq not in half.held or len(half.held[seq]) < len(data):
                half.held_bytes += len(data) - len(half.held.get(seq, b""))
                half.held[seq] = data
            if half.held_bytes > self.max_out_of_order:
                self._skip_hole(st, direction, half, ts, out)
            return
        self._emit(st, direction, data, len(data), ts, out)
        half.next = (half.next + len(data)) % _MOD
        self._drain(st, direction, half, ts, out)

    def _drain(self, st: _Stream, direction: Direction, half: _Half, ts: int,
               out: list[SourceEvent]) -> None:
        progress = True
        while progress and half.held:
            progress = False
            for seq in list(half.held):
                assert half.next is not None
                ahead = (seq - half.next) % _MOD
                if ahead == 0 or ahead >= _MOD // 2:
                    data = half.held.pop(seq)
                    half.held_bytes -= len(data)
                    self._segment(st, direction, half, seq, data, ts, out)
                    progress = True
                    break

    def _skip_hole(self, st: _Stream, direction: Direction, half: _Half, ts: int,
                   out: list[SourceEvent]) -> None:
        """Declare the bytes before the first held segment lost: an explicit gap."""
        assert half.next is not None
        nxt = half.next
        first = min(half.held, key=lambda s: (s - nxt) % _MOD)
        gap = (first - nxt) % _MOD
        self._emit(st, direction, b"", gap, ts, out)
        half.next = first
        self._drain(st, direction, half, ts, out)

    def _emit(self, st: _Stream, direction: Direction, data: bytes, real_len: int, ts: int,
              out: list[SourceEvent]) -> None:
        out.append(DataEvent(
            conn_id=st.conn_id, pid=0, tid=0, exe="", direction=direction, local=st.local,
            remote=st.remote, origin=st.origin, tls=False, ts_ns=ts, data=data,
            real_len=real_len))

    def _close(self, st: _Stream, ts: int) -> list[SourceEvent]:
        out: list[SourceEvent] = []
        for direction, half in st.halves.items():
            if half.held:
                self._skip_hole(st, direction, half, ts, out)
        self.streams.pop((st.local, st.remote), None)
        out.append(CloseEvent(conn_id=st.conn_id, pid=0, ts_ns=ts))
        return out

    def finish(self, ts: int) -> list[SourceEvent]:
        """End of capture: flush holes and close what is still open."""
        out: list[SourceEvent] = []
        for st in list(self.streams.values()):
            out += self._close(st, ts)
        return out


def events_from_bytes(data: bytes) -> Iterator[SourceEvent]:
    """Every source event of a capture file's bytes, in capture order."""
    r = Reassembler()
    last = 0
    try:
        for linktype, frame, ts in frames(data):
            seg = tcp_segment(linktype, frame, ts)
            last = max(last, ts)
            if seg is not None:
                yield from r.feed(seg)
    except struct.error as exc:
        raise ReplayError(f"truncated capture record: {exc}") from None
    yield from r.finish(last)


def events_from_file(path: str) -> Iterator[SourceEvent]:
    """``events_from_bytes`` of a file; ReplayError (one line) when it cannot be read."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ReplayError(f"{path}: {exc.strerror}") from None
    try:
        yield from events_from_bytes(data)
    except ReplayError as exc:
        raise ReplayError(f"{path}: {exc}") from None
