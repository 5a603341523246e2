"""A problem found in a file: the one result type of every loader and validator rule.

Validation returns data; reporters print it (``qtap_fluent.cli.report``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Level(enum.IntEnum):
    """Severity, ordered so that ``max()`` gives the worst."""

    INFO = 1
    WARNING = 2
    ERROR = 3

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One finding: where (1-based line and column), how bad, which rule, and what."""

    path: str
    line: int
    col: int
    level: Level
    rule: str
    message: str

    def format(self) -> str:
        """``path:line:col: level: message [rule]`` — the default text form."""
        return f"{self.path}:{self.line}:{self.col}: {self.level}: {self.message} [{self.rule}]"

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.path, self.line, self.col, self.rule)


def worst(problems: list[Problem] | tuple[Problem, ...]) -> Level | None:
    """The highest level among ``problems``, or None when there are none."""
    return max((p.level for p in problems), default=None)
