"""Parameters of the bundled Lua filters: checking them and writing them as Lua literals.

``filters.render_script`` checks every parameter here before it reaches a script, so that a bad
value is a clear error at ``gen`` time instead of a Lua error inside Fluent Bit, where a
protected-mode error leaves whole chunks unfiltered (fluentbit.md §4).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qtap_fluent.errors import UsageError


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of a filter: its kind (how it is checked), default and meaning."""

    kind: str  #: names | patterns | bool | int | str | ranges | bounds | choice:a|b
    default: Any
    doc: str


def _fail(name: str, key: str, why: str) -> UsageError:
    return UsageError(f"Lua filter {name!r}: parameter {key!r} {why}")


def _strings(name: str, key: str, value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise _fail(name, key, f"must be a list of strings, got {type(value).__name__}")
    out = []
    for v in value:
        if not isinstance(v, str) or not v:
            raise _fail(name, key, f"must hold non-empty strings, got {v!r}")
        out.append(v)
    return out


def check_value(name: str, key: str, spec: Param, value: Any) -> Any:
    """``value`` for parameter ``key`` of filter ``name``, checked and normalised."""
    kind = spec.kind
    if kind == "names":
        return dedup(_strings(name, key, value))
    if kind == "patterns":
        patterns = dedup(_strings(name, key, value))
        for pattern in patterns:
            problem = lua_pattern_problem(pattern)
            if problem:
                raise _fail(name, key, f"holds {pattern!r}, not a Lua pattern: {problem}")
        return patterns
    if kind == "bool":
        if not isinstance(value, bool):
            raise _fail(name, key, f"must be true or false, got {value!r}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _fail(name, key, f"must be a non-negative integer, got {value!r}")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise _fail(name, key, f"must be a string, got {value!r}")
        return value
    if kind.startswith("choice:"):
        choices = kind.split(":", 1)[1].split("|")
        if value not in choices:
            raise _fail(name, key, f"must be one of {', '.join(choices)}, got {value!r}")
        return value
    if kind == "bounds":
        nums = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else None
        if nums is None or not all(_is_number(n) and n > 0 for n in nums):
            raise _fail(name, key, f"must be a list of positive numbers, got {value!r}")
        if any(b <= a for a, b in itertools.pairwise(nums)):
            raise _fail(name, key, f"must be strictly ascending, got {value!r}")
        return nums
    if kind == "ranges":
        return _ranges(name, key, value)
    raise AssertionError(f"unknown parameter kind {kind}")


def _ranges(name: str, key: str, value: Any) -> list[list[int]]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise _fail(name, key, f"must be a list of (low, high) pairs, got {value!r}")
    out = []
    for pair in value:
        if isinstance(pair, str):
            pair = parse_range(pair, name=name, key=key)
        if (
            not isinstance(pair, Sequence)
            or len(pair) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in pair)
        ):
            raise _fail(name, key, f"holds {pair!r}, not a (low, high) pair of integers")
        low, high = pair
        if not 0 <= low <= high <= 999:
            raise _fail(name, key, f"range {low}-{high} must satisfy 0 <= low <= high <= 999")
        out.append([low, high])
    return out


def lua_pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a valid Lua 5.1 pattern, or None.

    Lua reports a malformed pattern only when matching reaches the bad part, i.e. inside
    Fluent Bit at run time, where a Lua error leaves the whole chunk unfiltered. Checked here
    instead, with the rules of ``lstrlib.c`` (``classEnd``, ``%b``, ``%f``, captures).
    """
    # string.find() treats a pattern without these characters as plain text (lstrlib.c SPECIALS)
    if not any(ch in pattern for ch in "^$*+?.([%-"):
        return None
    i, n = 0, len(pattern)
    captures: list[bool] = []  # closed?
    if pattern.startswith("^"):
        i = 1
    while i < n:
        c = pattern[i]
        if c == "%":
            if i + 1 >= n:
                return "malformed pattern (ends with '%')"
            nxt = pattern[i + 1]
            if nxt == "b":
                if i + 3 >= n:
                    return "unbalanced pattern (missing arguments to '%b')"
                i += 4
                continue
            if nxt == "f":
                if i + 2 >= n or pattern[i + 2] != "[":
                    return "missing '[' after '%f' in pattern"
                i += 2
                continue
            if nxt.isdigit():
                k = int(nxt) - 1
                if not (0 <= k < len(captures) and captures[k]):
                    return f"invalid capture index %{nxt}"
            i += 2
        elif c == "[":
            j = i + 1
            if j < n and pattern[j] == "^":
                j += 1
            first = True
            while True:
                if j >= n:
                    return "malformed pattern (missing ']')"
                if pattern[j] == "]" and not first:
                    break
                j += 2 if pattern[j] == "%" else 1
                first = False
            i = j + 1
        elif c == "(":
            captures.append(False)
            i += 1
        elif c == ")":
            open_ = [k for k, closed in enumerate(captures) if not closed]
            if not open_:
                return "invalid pattern capture"
            captures[open_[-1]] = True
            i += 1
        else:
            i += 1
    if not all(captures):
        return "unfinished capture"
    return None


def parse_range(text: str, *, name: str = "drop", key: str = "status_ranges") -> tuple[int, int]:
    """``"500-599"`` or ``"404"`` -> ``(500, 599)`` / ``(404, 404)`` (for ``--drop-status``)."""
    low_s, sep, high_s = text.strip().partition("-")
    try:
        low = int(low_s)
        high = int(high_s) if sep else low
    except ValueError:
        raise _fail(name, key, f"range {text!r} is not LOW-HIGH (e.g. 500-599)") from None
    return (low, high)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def dedup(items: Sequence[str]) -> list[str]:
    """``items`` without repeats, first occurrence kept."""
    return list(dict.fromkeys(items))


def lua_literal(value: Any) -> str:
    """A Lua 5.1 literal for ``value``; maps get sorted keys so the output is deterministic."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UsageError(f"cannot write {value!r} into a Lua script")
        return repr(value)
    if isinstance(value, str):
        return _lua_string(value)
    if isinstance(value, Mapping):
        items = sorted(value.items(), key=lambda kv: str(kv[0]))
        body = ", ".join(f"[{_lua_string(str(k))}] = {lua_literal(v)}" for k, v in items)
        return "{ " + body + " }" if body else "{}"
    if isinstance(value, (list, tuple)):
        body = ", ".join(lua_literal(v) for v in value)
        return "{ " + body + " }" if body else "{}"
    raise UsageError(f"cannot write a {type(value).__name__} into a Lua script")


def _lua_string(text: str) -> str:
    out = ['"']
    for b in text.encode("utf-8"):
        if b < 0x20 or b == 0x7F or b in (0x22, 0x5C):
            out.append(f"\\{b:03d}")  # decimal escapes: Lua 5.1 has no \x
        else:
            out.append(chr(b))
    out.append('"')
    # bytes >= 0x80 were appended as latin-1 code points; re-encode them as UTF-8 bytes
    return "".join(out).encode("latin-1").decode("utf-8")
