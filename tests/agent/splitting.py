"""Split-invariance helper: a sans-I/O parser must give the same events however bytes arrive.

A *script* is a list of ``(method_name, bytes)`` steps fed to a fresh parser from ``factory``.
``run(factory, script, cuts)`` feeds each step cut at the given offsets; ``check(...)`` compares
the whole-step run with the byte-by-byte run; ``hypothesis_cuts`` draws random cut lists.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import strategies as st

Script = Sequence[tuple[str, bytes]]


def run(factory: Callable[[], Any], script: Script,
        cuts: Sequence[Sequence[int]] | None = None) -> list[Any]:
    """Feed ``script`` with step ``i`` cut at ``cuts[i]`` (sorted offsets); all events in order."""
    parser = factory()
    events: list[Any] = []
    for i, (method, data) in enumerate(script):
        feed = getattr(parser, method)
        points = sorted({c for c in (cuts[i] if cuts else ()) if 0 < c < len(data)})
        start = 0
        for point in [*points, len(data)]:
            if point > start or not data:
                events += feed(data[start:point])
            start = point
    close = getattr(parser, "close", None)
    if close is not None:
        events += close()
    return events


def bytewise(script: Script) -> list[list[int]]:
    return [list(range(1, len(data))) for _, data in script]


def check(factory: Callable[[], Any], script: Script) -> list[Any]:
    """Whole and byte-by-byte runs must agree; returns the events."""
    whole = run(factory, script)
    assert run(factory, script, bytewise(script)) == whole
    return whole


def cuts_for(script: Script) -> st.SearchStrategy[list[list[int]]]:
    """Hypothesis strategy: random cut offsets for every step of ``script``."""
    return st.tuples(*[st.lists(st.integers(min_value=1, max_value=max(1, len(d) - 1)),
                                max_size=8) for _, d in script]).map(list)
