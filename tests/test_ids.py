"""XidGenerator's cached stem against the plain rs/xid encoding (base32hex of the 12 bytes)."""

from __future__ import annotations

import base64
import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from qtap_fluent.agent.ids import XidGenerator


def _want(machine: str, pid: int, counter: int, ts_ns: int) -> str:
    prefix = hashlib.md5(machine.encode(), usedforsecurity=False).digest()[:3] + (
        pid & 0xFFFF).to_bytes(2, "big")
    raw = ((ts_ns // 1_000_000_000) & 0xFFFFFFFF).to_bytes(4, "big") + prefix + (
        counter & 0xFFFFFF).to_bytes(3, "big")
    return base64.b32hexencode(raw)[:20].decode().lower()


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["a", "qtap-fluent", "h\u00e9"]), st.integers(0, 70000),
       st.integers(0, 0xFFFFFF + 5),
       st.lists(st.integers(-3 * 10**9, 3 * 10**9), min_size=1, max_size=150))
def test_ids_equal_the_plain_encoding(machine: str, pid: int, start: int, steps: list[int]) -> None:
    gen = XidGenerator(machine, pid, start)
    ts = 1_767_225_599_000_000_000
    counter = start & 0xFFFFFF
    for step in steps:
        ts = max(0, ts + step // 7 if step % 3 else ts + 1)  # mostly within one second
        counter = (counter + 1) & 0xFFFFFF
        assert gen.new(ts) == _want(machine, pid, counter, ts)


def test_ids_across_64_counters_seconds_and_the_wrap() -> None:
    gen = XidGenerator("m", 1, 0xFFFFFF - 100)
    ts = 1_767_225_600_999_999_000
    for k in range(1, 300):
        ts += 7 if k % 50 else 1_000_000_000
        assert gen.new(ts) == _want("m", 1, (0xFFFFFF - 100 + k) & 0xFFFFFF, ts), k
    late = XidGenerator("m", 1)
    assert late.new(2**32 * 10**9 + 5) == _want("m", 1, 1, 2**32 * 10**9 + 5)  # seconds wrap
