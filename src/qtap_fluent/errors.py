"""The few exceptions qtap-fluent raises, each one a kind a caller branches on."""

from __future__ import annotations


class QtapFluentError(Exception):
    """Base of every error qtap-fluent raises on purpose.

    The CLI turns it into one line on stderr and exit status 1; anything else is a bug.
    """


class UsageError(QtapFluentError):
    """The command line asks for something impossible (exit status 2)."""


class ConfigError(QtapFluentError):
    """A configuration file could not be used; ``problems`` says what and where."""

    def __init__(self, message: str, problems: list[object] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])
