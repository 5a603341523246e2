"""Qtap-style ids (rs/xid): 12 bytes = 4 s timestamp, 3 machine, 2 pid, 3 counter; base32hex.

Pure: the caller passes the time. Ids are 20 lower-case characters, e.g. ``d3t55gg7p3qr49f8485g``.
"""

from __future__ import annotations

import base64
import hashlib


def _encode(raw: bytes) -> str:
    # rs/xid is base32hex (RFC 4648 §7) of the 12 bytes, lower case, without padding: 20 chars.
    return base64.b32hexencode(raw)[:20].decode("ascii").lower()


_DIGITS = "0123456789abcdefghijklmnopqrstuv"
#: Two base32hex digits per 10-bit value: the counter part is encoded with table lookups.
_PAIRS = [_DIGITS[i >> 5] + _DIGITS[i & 31] for i in range(1024)]


class XidGenerator:
    """Sequential xids for one agent process."""

    __slots__ = ("_counter", "_hi_ns", "_high", "_lo_ns", "_low_base", "_mid", "_prefix", "_stem")

    def __init__(self, machine: str, pid: int, counter: int = 0) -> None:
        self._prefix = hashlib.md5(machine.encode(), usedforsecurity=False).digest()[:3] + (
            pid & 0xFFFF).to_bytes(2, "big")
        self._counter = counter & 0xFFFFFF
        # Digits 8..19 encode bytes 5..11 (prefix[1:5], 32 bits, then the 24-bit counter) and
        # 4 padding bits: v = tail << 28 | counter << 4. Digits 8..13 (bits 30..59) depend on
        # the tail only; digits 14..19 are the low 30 bits, a small int cheap to split.
        tail = int.from_bytes(self._prefix[1:5], "big")
        v = tail << 28
        self._mid = "".join(_PAIRS[(v >> s) & 1023] for s in (50, 40, 30))
        self._low_base = (tail & 3) << 28
        #: The id's first 18 digits (all but the last pair) hold for timestamps in
        #: [_lo_ns, _hi_ns) and while the low 30 bits shifted right by 10 equal _high: for 64
        #: counters in a row within one second. Empty window at first.
        self._stem = ""
        self._lo_ns = self._hi_ns = 0
        self._high = -1

    def new(self, ts_ns: int) -> str:
        """A fresh id stamped with ``ts_ns`` (nanoseconds since the epoch)."""
        self._counter = counter = (self._counter + 1) & 0xFFFFFF
        w = self._low_base | counter << 4
        # The usual call changes only the last two digits: one concatenation and no division
        # (~4,700 -> ~3,500 instructions per id, callgrind).
        if self._lo_ns <= ts_ns < self._hi_ns and w >> 10 == self._high:
            return self._stem + _PAIRS[w & 1023]
        return self._restem(ts_ns, w)

    def _restem(self, ts_ns: int, w: int) -> str:
        secs = ts_ns // 1_000_000_000
        self._lo_ns = secs * 1_000_000_000
        self._hi_ns = self._lo_ns + 1_000_000_000
        sec = secs & 0xFFFFFFFF  # digits 0..7 = bytes 0..4 = timestamp + prefix[0]
        head = _encode(sec.to_bytes(4, "big") + self._prefix + b"\0\0\0")[:8] + self._mid
        self._high = w >> 10
        self._stem = head + _PAIRS[w >> 20] + _PAIRS[(w >> 10) & 1023]
        return self._stem + _PAIRS[w & 1023]
