"""Process exclusion filters (``tap.filters``), compiled once for the agent's per-process check.

Qtap's order (pkg/process/filter.go): custom filters in file order, then predefined groups; the
first filter that matches decides, and its ``only`` flags say which layers are skipped.
Non-regex strategies compare lower-cased exe paths; an empty strategy means ``suffix``; a regex
matches anywhere in the exe, case-sensitively. An invalid filter is skipped (Qtap logs it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from qtap_fluent.qtap import schema as S

if TYPE_CHECKING:
    from qtap_fluent.qtap.model import Filters

Test = Callable[[str], bool]


def _exe_test(pattern: str, strategy: str) -> Test | None:
    if not pattern:
        return None
    if strategy == "regex":
        from qtap_fluent.qtap.rulekit.errors import RuleSyntaxError
        from qtap_fluent.qtap.rulekit.parser import compile_regex
        try:
            rx = compile_regex(pattern, 0)
        except RuleSyntaxError:
            return None
        return lambda exe: rx.search(exe) is not None
    low = pattern.lower()
    strategy = strategy or "suffix"
    if strategy == "exact":
        return lambda exe: exe.lower() == low
    if strategy == "prefix":
        return lambda exe: exe.lower().startswith(low)
    if strategy == "suffix":
        return lambda exe: exe.lower().endswith(low)
    if strategy == "contains":
        return lambda exe: low in exe.lower()
    return None  # an unknown strategy never matches


class ExeMatcher:
    """Decides, per process, which layers Qtap would skip."""

    def __init__(self, filters: Filters) -> None:
        self._tests: list[tuple[Test, int]] = []
        self._skip_own_pid = 0
        for custom in filters.custom:
            test = _exe_test(custom.exe, custom.strategy)
            if test is not None:
                self._tests.append((test, custom.skip_flags))
        for group in filters.groups:
            if group == "qpoint" and not self._skip_own_pid:
                self._tests.append((lambda exe: False, 0))  # keeps the order position
                self._skip_own_pid = len(self._tests)
            for path in S.FILTER_GROUPS.get(group, ()):
                test = _exe_test(path, "exact")
                if test is not None:
                    self._tests.append((test, S.SKIP_ALL))

    def skip_flags(self, exe: str, *, pid: int | None = None,
                   own_pid: int | None = None) -> int:
        """The skip bitmask for a process (0: capture everything). ``own_pid`` (default: this
        process) is what the ``qpoint`` group excludes."""
        if own_pid is None:
            own_pid = os.getpid()
        for index, (test, flags) in enumerate(self._tests, start=1):
            if index == self._skip_own_pid:
                if pid is not None and pid == own_pid:
                    return S.SKIP_ALL
                continue
            if exe and test(exe):
                return flags
        return 0


_CACHE: dict[int, tuple[Filters, ExeMatcher]] = {}


def matcher_for(filters: Filters) -> ExeMatcher:
    """The compiled matcher of ``filters`` (cached per object)."""
    hit = _CACHE.get(id(filters))
    if hit is not None and hit[0] is filters:
        return hit[1]
    matcher = ExeMatcher(filters)
    if len(_CACHE) > 64:
        _CACHE.clear()
    _CACHE[id(filters)] = (filters, matcher)
    return matcher

