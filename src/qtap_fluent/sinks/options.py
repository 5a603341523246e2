"""Typed reading of plugin options written the Fluent Bit way (``50M``, ``10m``, ``on``).

Value grammar from Fluent Bit ``src/flb_utils.c`` (see shared reference fluentbit.md 2.3):
sizes take decimal ``K/KB/M/MB/G/GB`` suffixes (K = 1000), times take ``s``, ``m``, ``h``, ``d``,
booleans are ``true/on/yes`` or ``false/off/no``. Unlike Fluent Bit we refuse garbage instead of
silently storing 0 or -1: ``Options`` raises ``SinkError`` naming the option and the value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from qtap_fluent.sinks.base import SinkError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]b?|b)?\s*$", re.IGNORECASE)
_SIZE_MULT = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2,
              "g": 1000**3, "gb": 1000**3}
_TIME = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
_TIME_MULT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_TRUE = {"true", "on", "yes", "1"}
_FALSE = {"false", "off", "no", "0"}


def parse_size(value: Any) -> int:
    """Bytes from ``5242880``, ``"5M"`` or ``"1.5MB"``; ValueError otherwise."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a size")
    if isinstance(value, (int, float)):
        return int(value)
    m = _SIZE.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is not a size (like 5M, 100K or 1048576)")
    return int(float(m.group(1)) * _SIZE_MULT[(m.group(2) or "").lower()])


def parse_time(value: Any) -> float:
    """Seconds from ``30``, ``"10m"``, ``"1h"`` or ``"2d"``; ValueError otherwise."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a duration")
    if isinstance(value, (int, float)):
        return float(value)
    m = _TIME.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is not a duration (like 30s, 10m, 1h or 2d)")
    return float(m.group(1)) * _TIME_MULT[m.group(2).lower()]


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{value!r} is not a boolean (on/off, true/false, yes/no)")


class Options:
    """Read one plugin's options by type; remember which keys were used.

    Keys are matched case-insensitively, as Fluent Bit does.
    """

    def __init__(self, plugin: str, raw: Mapping[str, Any]) -> None:
        self.plugin = plugin
        self._raw = {str(k).lower(): v for k, v in raw.items()}
        self._used: set[str] = set()

    def _get(self, key: str) -> Any:
        self._used.add(key)
        return self._raw.get(key)

    def _convert(self, key: str, value: Any, fn: Any) -> Any:
        try:
            return fn(value)
        except (TypeError, ValueError) as exc:
            raise SinkError(f"{self.plugin}: option '{key}': {exc}") from None

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self._get(key)
        return default if value is None else str(value)

    def integer(self, key: str, default: int) -> int:
        value = self._get(key)
        if value is None:
            return default
        return int(self._convert(key, value, lambda v: int(str(v).strip())))

    def size(self, key: str, default: int) -> int:
        value = self._get(key)
        return default if value is None else int(self._convert(key, value, parse_size))

    def duration(self, key: str, default: float) -> float:
        value = self._get(key)
        return default if value is None else float(self._convert(key, value, parse_time))

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key)
        return default if value is None else bool(self._convert(key, value, parse_bool))

    def date_key(self) -> str | None:
        """``json_date_key`` with Fluent Bit's default ``date`` and ``false/off/no`` = none."""
        value = self._get("json_date_key")
        if value is None:
            return "date"
        if value is False or str(value).strip().lower() in ("false", "off", "no"):
            return None
        return str(value)

    def require(self, key: str) -> str:
        value = self.text(key)
        if not value:
            raise SinkError(f"{self.plugin}: '{key}' is required")
        return value

    def unknown(self, allowed: frozenset[str] = frozenset()) -> list[str]:
        """Keys given but never read (typos), except those in ``allowed``."""
        return sorted(k for k in self._raw if k not in self._used and k not in allowed)
