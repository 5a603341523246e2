"""The reader's hot path without a kernel: ring-buffer record walking and record -> events.

ringbuf.RingBuffer normally maps a BPF ring buffer; here its two mappings are replaced by
bytearrays laid out the same way (consumer page; producer page + the data area twice), so the
header bits, 8-byte alignment, wrap-around and the consumer position are checked exactly.
"""

from __future__ import annotations

import mmap
import struct

from qtap_fluent.agent.bpf import decode as d
from qtap_fluent.agent.bpf.loader import BpfOptions, BpfSource
from qtap_fluent.agent.bpf.ringbuf import RingBuffer
from qtap_fluent.agent.events import Address, DataEvent, LostEvent

PAGE = mmap.PAGESIZE
SIZE = PAGE  # one data page: easy to wrap around
BUSY, DISCARD = 1 << 31, 1 << 30


class FakeRing:
    """Kernel side of a ring: writes records at absolute positions like bpf_ringbuf_output."""

    def __init__(self, start: int) -> None:
        assert start % 8 == 0  # every record starts 8-byte aligned
        self.phys = bytearray(SIZE)
        self.prod = start
        self.cons = bytearray(PAGE)
        struct.pack_into("<Q", self.cons, 0, start)
        self.headers: list[int] = []

    def put(self, sample: bytes, flags: int = 0) -> None:
        self.headers.append(self.prod)
        self._write(self.prod, struct.pack("<II", len(sample) | flags, 0) + sample)
        self.prod += (len(sample) + 8 + 7) & ~7

    def commit(self, pos: int) -> None:
        n = struct.unpack_from("<I", self.phys, pos & (SIZE - 1))[0]
        self._write(pos, struct.pack("<I", n & ~BUSY))

    def _write(self, pos: int, data: bytes) -> None:
        for i, b in enumerate(data):
            self.phys[(pos + i) & (SIZE - 1)] = b

    def reader(self) -> RingBuffer:
        rb = RingBuffer.__new__(RingBuffer)
        prod = bytearray(PAGE) + self.phys + self.phys  # the data area is mapped twice
        struct.pack_into("<Q", prod, 0, self.prod)
        rb.size, rb._mask, rb._page = SIZE, SIZE - 1, PAGE
        rb._cons, rb._prod = self.cons, prod  # type: ignore[assignment]
        rb.view = prod  # type: ignore[assignment]
        return rb

    @property
    def consumer_pos(self) -> int:
        return int(struct.unpack_from("<Q", self.cons, 0)[0])


def samples(rb: RingBuffer) -> list[bytes]:
    return [bytes(rb.view[off:off + n]) for off, n in rb.records()]


def test_records_wrap_skip_discarded_and_stop_at_uncommitted() -> None:
    ring = FakeRing(start=3 * SIZE + SIZE - 40)  # the second record crosses the end
    ring.put(b"a" * 13)
    ring.put(b"b" * 100)
    ring.put(b"dropped", DISCARD)
    ring.put(b"c" * 3)
    ring.put(b"later", BUSY)  # reserved, not yet submitted
    ring.put(b"d" * 8)
    assert samples(ring.reader()) == [b"a" * 13, b"b" * 100, b"c" * 3]
    assert ring.consumer_pos == ring.headers[4]  # given back up to the busy one, not past it
    ring.commit(ring.headers[4])
    assert samples(ring.reader()) == [b"later", b"d" * 8]
    assert ring.consumer_pos == ring.prod
    assert samples(ring.reader()) == []


def test_stopping_early_gives_back_only_what_was_read() -> None:
    ring = FakeRing(start=0)
    for i in range(5):
        ring.put(bytes([i]) * 10)
    rb = ring.reader()
    it = rb.records()
    next(it)
    next(it)
    it.close()  # the caller stopped after two records
    assert ring.consumer_pos == ring.headers[2]
    assert samples(ring.reader()) == [bytes([i]) * 10 for i in (2, 3, 4)]
    assert len(samples_limited(ring, 1)) == 0  # all read


def samples_limited(ring: FakeRing, limit: int) -> list[tuple[int, int]]:
    return list(ring.reader().records(limit=limit))


def test_limit_bounds_one_batch() -> None:
    ring = FakeRing(start=0)
    for i in range(6):
        ring.put(bytes([i]) * 4)
    assert len(samples_limited(ring, 4)) == 4
    assert len(samples_limited(ring, 4)) == 2


class Host:
    def exe(self, pid: int) -> str | None:
        return "/usr/bin/app"

    def socket_addresses(self, pid: int, fd: int) -> tuple[Address, Address] | None:
        return None

    def resolve(self, path: str) -> str:
        return path


def test_source_reads_records_from_the_ring_into_events() -> None:
    """BpfSource._read_ring (what poll() runs on x86-64): data records take the fast path,
    the other kinds the general decoder, a bad record becomes a counted LostEvent."""
    src = BpfSource(BpfOptions(), host=Host())
    ring = FakeRing(start=SIZE - 96)  # positions are 8-byte aligned, like the kernel's
    ring.put(d.pack_sock(pid=7, fd=3, sock_id=1, family=d.AF_INET, raddr=b"\x7f\0\0\1",
                         rport=443, origin=d.ORIGIN_CONNECT, laddr=b"\x7f\0\0\1", lport=5000))
    ring.put(d.pack_sni(pid=7, tls_ptr=0x99, name="h.test"))
    ring.put(d.pack_data(pid=7, fd=3, sock_id=1, tls_ptr=0x99, data=b"GET / HTTP/1.1\r\n",
                         source=d.Source.OPENSSL, ts_ns=10))
    ring.put(d.pack_data(pid=7, fd=3, sock_id=1, data=b"abc")[:-1])  # says 3, carries 2
    ring.put(d.pack_data(pid=7, fd=3, sock_id=1, tls_ptr=0x99, data=b"HTTP/1.1 200 OK\r\n",
                         direction=d.DIR_IN, source=d.Source.OPENSSL, real_len=40))
    src._read_ring(ring.reader())
    src._read_ring(ring.reader())  # the rest, after the bad record stopped the first batch
    evs = src._pending
    data = [e for e in evs if isinstance(e, DataEvent)]
    lost = [e for e in evs if isinstance(e, LostEvent)]
    assert [e.data for e in data] == [b"GET / HTTP/1.1\r\n", b"HTTP/1.1 200 OK\r\n"]
    assert all(e.sni == "h.test" and e.tls and e.exe == "/usr/bin/app" for e in data)
    assert data[0].remote == Address(ip="127.0.0.1", port=443)
    assert data[1].truncated == 40 - len(b"HTTP/1.1 200 OK\r\n")
    assert len(lost) == 1 and lost[0].count == 1 and "says 3 bytes" in lost[0].reason
    assert src.counters.records == 5 and src.counters.decode_errors == 1
    assert ring.consumer_pos == ring.prod
