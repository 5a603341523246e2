"""Reading a BPF ring buffer map straight from its memory mapping (no bcc, no callbacks).

bcc's ``ring_buffer_poll`` calls back into Python through ctypes once per record and copies
each record with ``string_at``: at four records per HTTPS request that was most of the
reader's cost. The kernel lets the consumer map the ring itself (kernel/bpf/ringbuf.c,
``ringbuf_map_mmap_kern``): page 0 holds ``consumer_pos`` (read-write), page 1 holds
``producer_pos`` (read-only), and the data pages follow, mapped twice in a row so a record that
wraps around the end is still contiguous. Each record starts with an 8-byte header, ``u32 len``
(bit 31 BUSY: not committed yet; bit 30 DISCARD: skip it) and ``u32 pg_off``; records are
8-byte aligned. This is what libbpf's ``ring_buffer__consume`` does, in Python.

x86-64 only: it is total-store-order, so plain loads of the positions and the header see the
record's bytes written before them (libbpf uses load-acquire/store-release). Elsewhere the
loader keeps bcc's reader (:func:`supported`).
"""

from __future__ import annotations

import mmap
import platform
import select
import struct
from collections.abc import Generator

_BUSY = 1 << 31
_DISCARD = 1 << 30
_HDR = 8  # BPF_RINGBUF_HDR_SZ
_POS = struct.Struct("<Q")
_LEN = struct.Struct("<I")
#: consumer_pos is published at least this often while a batch is read, so the producers
#: get the space back before the whole batch is done.
_COMMIT_EVERY = 64


def supported() -> bool:
    """Can this reader be used here (see the module docstring on memory ordering)?"""
    return platform.machine() in ("x86_64", "AMD64")


def map_max_entries(map_fd: int) -> int:
    """The data size of a ring buffer map, from ``/proc/self/fdinfo`` (bytes)."""
    with open(f"/proc/self/fdinfo/{map_fd}", encoding="ascii") as f:
        for line in f:
            if line.startswith("max_entries:"):
                return int(line.split()[1])
    raise OSError(f"fd {map_fd} is not a BPF map (no max_entries in its fdinfo)")


class RingBuffer:
    """One BPF_MAP_TYPE_RINGBUF, mapped into this process.

    :meth:`records` yields ``(offset, length)`` of every committed record in :attr:`view`;
    the caller decodes them in place (``struct.unpack_from``, slices) before the next one.
    """

    def __init__(self, map_fd: int) -> None:
        self.size = map_max_entries(map_fd)
        page = mmap.PAGESIZE
        if self.size <= 0 or self.size % page or self.size & (self.size - 1):
            raise OSError(f"ring buffer of {self.size} bytes: not a power-of-two page count")
        self._mask = self.size - 1
        self._cons = mmap.mmap(map_fd, page, flags=mmap.MAP_SHARED,
                               prot=mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        try:
            self._prod = mmap.mmap(map_fd, page + 2 * self.size, flags=mmap.MAP_SHARED,
                                   prot=mmap.PROT_READ, offset=page)
        except BaseException:
            self._cons.close()
            raise
        self._page = page
        #: The mapping records live in; a record at data offset o is at view[page + o].
        self.view = self._prod
        self._epoll = select.epoll()
        self._epoll.register(map_fd, select.EPOLLIN)

    def wait(self, timeout_ms: int) -> bool:
        """Sleep until the kernel wakes us or ``timeout_ms`` passed; True if data is there.

        The map's poll is level-triggered on "unread data": it returns at once when records
        are waiting, whether or not the producer asked for a wake-up.
        """
        return bool(self._epoll.poll(max(timeout_ms, 0) / 1000.0))

    def records(self, limit: int = 1 << 16) -> Generator[tuple[int, int], None, None]:
        """Committed records, oldest first, as (offset in :attr:`view`, length).

        At most ``limit`` (a bound on one batch while producers keep writing). Consumed records
        are handed back to the kernel as the iteration goes (and when it stops early, up to
        the last record yielded).
        """
        cons, prod, view = self._cons, self._prod, self._prod
        unpack_pos, unpack_len = _POS.unpack_from, _LEN.unpack_from
        mask, base = self._mask, self._page
        pos = unpack_pos(cons, 0)[0]
        done = 0
        try:
            while limit > 0:
                end = unpack_pos(prod, 0)[0]
                if pos >= end:
                    return
                while pos < end and limit > 0:
                    if done >= _COMMIT_EVERY:
                        # Only records the caller is done with (we were resumed after them).
                        _POS.pack_into(cons, 0, pos)
                        done = 0
                    off = base + (pos & mask)
                    n = unpack_len(view, off)[0]
                    if n & _BUSY:
                        return  # reserved, not yet committed: the rest waits for it
                    length = n & ~(_BUSY | _DISCARD)
                    # Past this record before handing it out: if the caller stops here, the
                    # commit in `finally` must not give it to us a second time.
                    pos = (pos + length + _HDR + 7) & ~7
                    done += 1
                    limit -= 1
                    if not n & _DISCARD:
                        yield off + _HDR, length
        finally:
            _POS.pack_into(cons, 0, pos)

    def close(self) -> None:
        """Unmap (the map itself is freed when bcc closes it and these mappings are gone)."""
        self._epoll.close()
        self._prod.close()
        self._cons.close()
