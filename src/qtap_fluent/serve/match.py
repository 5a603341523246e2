"""Tag routing with Fluent Bit's semantics (FB ``src/flb_router.c``).

``Match`` is a case-sensitive pattern where ``*`` matches any run of characters (including
none) and every other character matches itself; there are no other wildcards. ``Match_Regex``
is a regular expression *searched* in the tag (Fluent Bit's ``flb_regex_match`` runs
``onig_search``), and when both are given ``Match_Regex`` wins.
"""

from __future__ import annotations

import re
from collections.abc import Callable


def wildcard_regex(pattern: str) -> re.Pattern[str]:
    """The regex equivalent of a Fluent Bit ``Match`` pattern."""
    return re.compile("".join(".*" if c == "*" else re.escape(c) for c in pattern), re.DOTALL)


class TagMatcher:
    """Decides whether a section applies to a tag; answers are cached per tag (bounded)."""

    __slots__ = ("_cache", "_search", "match", "match_regex")

    #: Distinct tags remembered; past this the cache is cleared (tags are few in practice).
    CACHE_MAX = 4096

    def __init__(self, match: str | None = None, match_regex: str | None = None) -> None:
        self.match = match
        self.match_regex = match_regex
        self._search: Callable[[str], object] | None
        if match_regex is not None:
            self._search = re.compile(match_regex).search
        elif match is not None:
            self._search = wildcard_regex(match).fullmatch
        else:
            self._search = None  # Fluent Bit: a section without Match gets nothing
        self._cache: dict[str, bool] = {}

    def matches(self, tag: str) -> bool:
        hit = self._cache.get(tag)
        if hit is None:
            hit = self._search is not None and self._search(tag) is not None
            if len(self._cache) >= self.CACHE_MAX:
                self._cache.clear()
            self._cache[tag] = hit
        return hit

    def __repr__(self) -> str:
        if self.match_regex is not None:
            return f"Match_Regex {self.match_regex}"
        return f"Match {self.match}"
