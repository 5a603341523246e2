"""Fluent Bit option facts (5.1.1) and value parsers with Fluent Bit's semantics.

The facts ship in ``qtap_fluent/assets/fluentbit/``: ``fluent-bit-5.1.1-properties.json`` (every
property name, type and default of the plugins qtap-fluent generates, read from a real build) and
``extra-facts.json`` (plugin names of the whole build, repeatable keys, keys every instance takes
outside its config map, ``[SERVICE]`` keys). Kinds are the model's: ``input``, ``filter``,
``output``, ``custom``; plugin and key names are matched case-insensitively like Fluent Bit.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

PROPERTIES_ASSET = "fluent-bit-5.1.1-properties.json"
EXTRA_ASSET = "extra-facts.json"

#: The JSON's type names (``fluent-bit -J``) mapped to ours.
_TYPES = {
    "string": "string",
    "boolean": "bool",
    "integer": "int",
    "double": "double",
    "size": "size",
    "time": "time",
    "multiple comma delimited strings": "clist",
    "prefixed string": "prefix",
    "deprecated": "deprecated",
}


@dataclass(frozen=True, slots=True)
class Option:
    """One property of a plugin (or of ``[SERVICE]``)."""

    name: str  #: lower-cased
    type: str  #: string, bool, int, double, size, time, clist, slist, prefix, deprecated
    default: str | None = None
    multi: bool = False  #: may be given more than once (FLB_CONFIG_MAP_MULT)


def _asset(name: str) -> Any:
    ref = resources.files("qtap_fluent").joinpath("assets", "fluentbit", name)
    return json.loads(ref.read_text(encoding="utf-8"))


def _type(raw: str) -> str:
    if raw.startswith("space delimited strings"):
        return "slist"
    return _TYPES.get(raw, "string")


@cache
def _tables() -> dict[str, dict[str, dict[str, Option]]]:
    """``{kind: {plugin: {key: Option}}}`` for the plugins whose config map we know."""
    props = _asset(PROPERTIES_ASSET)["plugins"]
    extra = _asset(EXTRA_ASSET)
    out: dict[str, dict[str, dict[str, Option]]] = {}
    for plural, plugins in props.items():
        kind = plural.rstrip("s")
        multi = extra["multi"].get(kind, {})
        generic = extra["generic"].get(kind, [])
        for plugin, groups in plugins.items():
            table: dict[str, Option] = {}
            for name, typ, default in generic:
                table[name] = Option(name, _type(typ), default)
            for group in ("global_options", "network_tls", "networking", "options"):
                for o in groups.get(group, []):
                    key = o["name"].lower()
                    table[key] = Option(key, _type(o["type"]), o["default"],
                                        key in multi.get(plugin, ()))
            for key in extra["always"]:
                table[key] = Option(key, "string")
            out.setdefault(kind, {})[plugin] = table
    return out


@cache
def _extra() -> dict[str, Any]:
    return dict(_asset(EXTRA_ASSET))


def plugin_known(kind: str, plugin: str) -> bool:
    """Is ``plugin`` a Fluent Bit 5.1.1 plugin of ``kind`` (input/filter/output/custom)?"""
    return plugin.lower() in _extra()["plugin_names"].get(kind, ())


def plugin_names(kind: str) -> list[str]:
    return list(_extra()["plugin_names"].get(kind, ()))


def options_of(kind: str, plugin: str) -> dict[str, Option] | None:
    """The option table of a plugin, or None when its config map is not in our facts."""
    return _tables().get(kind, {}).get(plugin.lower())


def option(kind: str, plugin: str, key: str) -> Option | None:
    """The option ``key`` of ``plugin``, honouring prefixed options (tail ``parser_N``).

    ``kind`` may also be ``"service"`` (``plugin`` ignored) or ``"parser"`` /
    ``"multiline_parser"`` (keys of parsers-file sections).
    """
    if kind == "service":
        return service_options().get(key.lower())
    if kind in ("parser", "multiline_parser"):
        low = key.lower()
        return Option(low, "string", None, low == "rule") if low in parser_keys(kind) else None
    table = options_of(kind, plugin)
    if table is None:
        return None
    key = key.lower()
    if key in table:
        return table[key]
    for opt in table.values():
        if opt.type == "prefix" and key.startswith(opt.name) and len(key) > len(opt.name):
            return opt
    return None


def known(kind: str, plugin: str, key: str) -> bool:
    """Does Fluent Bit 5.1.1 accept ``key`` on ``plugin``? (``gen`` asserts this.)"""
    return option(kind, plugin, key) is not None


def suggest(candidates: list[str] | tuple[str, ...] | set[str], key: str) -> str | None:
    """The closest candidate to a misspelt ``key`` ("did you mean"), if any is close."""
    found = difflib.get_close_matches(key.lower(), sorted(candidates), n=1, cutoff=0.75)
    return found[0] if found else None


@cache
def service_options() -> dict[str, Option]:
    """The ``[SERVICE]`` keys Fluent Bit reads (unknown ones are silently ignored)."""
    multi = set(_extra()["service_multi"])
    return {name: Option(name, typ if typ != "boolean" else "bool", default, name in multi)
            for name, typ, default in _extra()["service"]}


def parser_keys(kind: str) -> tuple[str, ...]:
    """Keys Fluent Bit reads from a ``[PARSER]`` / ``[MULTILINE_PARSER]`` (others: ignored)."""
    return tuple(_extra()["parser_keys"].get(kind, ()))


def enum_values(kind: str, plugin: str, key: str) -> tuple[str, ...] | None:
    """The values ``key`` accepts, when it is an enumeration we know (case-insensitive)."""
    table = _extra()["enums"].get(kind, {})
    key = key.lower()
    for scope in (plugin.lower(), "*"):
        values = table.get(scope, {}).get(key)
        if values is not None:
            return tuple(values)
    return None


def log_levels() -> tuple[str, ...]:
    return tuple(_extra()["log_levels"])


# -- value parsers (FB src/flb_utils.c) --------------------------------------------------------

_TRUE = ("true", "on", "yes")
_FALSE = ("false", "off", "no")


def parse_bool(text: str) -> bool | None:
    """``flb_utils_bool``: true/on/yes, false/off/no (any case); None if neither."""
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    return None


_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmg]b?)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"k": 1000, "m": 1000**2, "g": 1000**3}


def parse_size(text: str) -> int | None:
    """``flb_utils_size_to_bytes``: number with optional K/KB/M/MB/G/GB, **decimal** units
    (K = 1000); fractions allowed; ``false`` is 0. None when it does not parse (Fluent Bit
    stores -1 silently)."""
    if text.strip().lower() == "false":
        return 0
    m = _SIZE.match(text)
    if not m:
        return None
    unit = (m.group(2) or "")[:1].lower()
    return int(float(m.group(1)) * _SIZE_UNITS.get(unit, 1))


_TIME = re.compile(r"^\s*(\d+)\s*([smhd])?\s*$", re.IGNORECASE)
_TIME_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str) -> int | None:
    """``flb_utils_time_to_seconds``: integer seconds with optional s/m/h/d (any case)."""
    m = _TIME.match(text)
    if not m:
        return None
    return int(m.group(1)) * _TIME_UNITS[(m.group(2) or "").lower()]


_INT = re.compile(r"^\s*[-+]?\d+\s*$")


def parse_int(text: str) -> int | None:
    """A plain integer. (Fluent Bit uses ``atoi``, which turns garbage into 0 silently.)"""
    return int(text) if _INT.match(text) else None


_LEADING = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)")


def parse_leading_number(text: str) -> float | None:
    """What ``atoi``/``atof`` read: the leading number; None when there is none (they give 0
    without any error, so that is the case worth reporting)."""
    m = _LEADING.match(text)
    return float(m.group(0)) if m else None


def parse_double(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
