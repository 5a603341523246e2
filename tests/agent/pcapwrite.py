"""Write small pcap / pcapng files for reader tests (struct; the formats as documented)."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass


@dataclass
class Pkt:
    ts_ns: int
    src: tuple[str, int]
    dst: tuple[str, int]
    seq: int
    flags: int  # FIN 1, SYN 2, RST 4, PSH 8, ACK 16
    payload: bytes = b""


def tcp_ip(p: Pkt) -> tuple[int, bytes]:
    """(ethertype, IP packet) for a segment."""
    tcp = struct.pack("!HHIIBBHHH", p.src[1], p.dst[1], p.seq % (1 << 32), 0, 5 << 4, p.flags,
                      65535, 0, 0) + p.payload
    src, dst = ipaddress.ip_address(p.src[0]), ipaddress.ip_address(p.dst[0])
    if src.version == 4:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0,
                         src.packed, dst.packed)
        return 0x0800, ip + tcp
    ip6 = struct.pack("!IHBB16s16s", 6 << 28, len(tcp), 6, 64, src.packed, dst.packed)
    return 0x86DD, ip6 + tcp


def frame(linktype: int, p: Pkt) -> bytes:
    etype, ip = tcp_ip(p)
    if linktype == 1:
        return b"\x00" * 12 + struct.pack("!H", etype) + ip
    if linktype == 113:
        return struct.pack("!HHH8sH", 0, 772, 6, b"\x00" * 8, etype) + ip
    if linktype == 276:
        return struct.pack("!HHIHBB8s", etype, 0, 1, 772, 0, 6, b"\x00" * 8) + ip
    if linktype == 101:
        return ip
    raise ValueError(linktype)


def pcap(pkts: list[Pkt], linktype: int = 1, nanos: bool = False, big: bool = False) -> bytes:
    e = ">" if big else "<"
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = [struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype)]
    for p in pkts:
        f = frame(linktype, p)
        sec, ns = divmod(p.ts_ns, 1_000_000_000)
        out.append(struct.pack(e + "IIII", sec, ns if nanos else ns // 1000, len(f), len(f)) + f)
    return b"".join(out)


def _block(btype: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def pcapng(pkts: list[Pkt], linktype: int = 1, tsresol: int = 9) -> bytes:
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    opts = struct.pack("<HHB3x", 9, 1, tsresol) + struct.pack("<HH", 0, 0)
    idb = _block(1, struct.pack("<HHI", linktype, 0, 262144) + opts)
    out = [shb, idb]
    tick = 10 ** (9 - tsresol)
    for p in pkts:
        f = frame(linktype, p)
        t = p.ts_ns // tick
        out.append(_block(6, struct.pack("<IIIII", 0, t >> 32, t & 0xFFFFFFFF, len(f), len(f)) + f))
    out.append(_block(5, b"\x00" * 8))  # an interface statistics block we must skip
    return b"".join(out)
