"""The one exception of the rulekit package, and the error VALUE evaluation returns."""

from __future__ import annotations

from qtap_fluent.errors import QtapFluentError


class RuleSyntaxError(QtapFluentError):
    """A rule expression does not parse.

    ``offset`` is the 0-based character offset in the expression text where reading stopped, so
    a config loader can point at line:col inside the YAML scalar the expression came from.
    """

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} (at offset {offset})")
        self.message = message
        self.offset = offset


class EvalError:
    """Why a rule could not be decided: missing fields and/or other messages."""

    __slots__ = ("messages", "missing")

    def __init__(self, missing: frozenset[str] = frozenset(),
                 messages: tuple[str, ...] = ()) -> None:
        self.missing = missing
        self.messages = messages

    def merge(self, other: EvalError) -> EvalError:
        return EvalError(self.missing | other.missing, self.messages + other.messages)

    def __str__(self) -> str:
        parts = list(self.messages)
        if self.missing:
            parts.insert(0, "missing field(s): " + ", ".join(sorted(self.missing)))
        return "; ".join(parts)

    def __repr__(self) -> str:
        return f"EvalError({self})"
