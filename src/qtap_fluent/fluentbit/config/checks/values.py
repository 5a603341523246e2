"""Property values by type: booleans, sizes, durations, integers and ports (fluentbit.md §2.3).

Fluent Bit parses most of these only at plugin init and turns many bad values into 0 or -1
silently (``atoi``, ``flb_utils_size_to_bytes``); ``[SERVICE]`` values are never checked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from qtap_fluent.fluentbit.config import options
from qtap_fluent.fluentbit.config.checks.base import FluentBitView, at_entry
from qtap_fluent.fluentbit.config.checks.sections import plugin_sections
from qtap_fluent.fluentbit.config.model import SERVICE, ConfigFile, Entry
from qtap_fluent.problems import Level, Problem
from qtap_fluent.validate.registry import register

_RULES: dict[str, tuple[str, Callable[[str], object], str]] = {
    "bool": ("fb-bool", options.parse_bool, "on/off, true/false or yes/no"),
    "size": ("fb-size", options.parse_size,
             "a size such as 512K, 50M or 1G (decimal units: K = 1000)"),
    "time": ("fb-time", options.parse_time, "a duration such as 30, 30s, 10m, 1h or 1d"),
    "int": ("fb-int", options.parse_leading_number, "an integer"),
    "double": ("fb-int", options.parse_leading_number, "a number"),
}

#: Keys that hold a TCP/UDP port.
_PORT_KEYS = ("port", "http_port")


def _typed_entries(view: FluentBitView) -> Iterator[tuple[ConfigFile, Entry, options.Option]]:
    service = options.service_options()
    for config in view.fluentbit:
        for s in config.sections:
            if s.kind == SERVICE:
                for e in s.entries:
                    if e.name in service and not e.unresolved:
                        yield config, e, service[e.name]
        for s in plugin_sections(config):
            for e in s.entries:
                opt = options.option(s.kind, s.plugin, e.name)
                if opt is not None and not e.unresolved:
                    yield config, e, opt


def _check_type(view: FluentBitView, typ: str) -> Iterator[Problem]:
    rule, parse, expected = _RULES[typ]
    for config, e, opt in _typed_entries(view):
        if opt.type != typ or e.name in _PORT_KEYS:
            continue
        if parse(e.value) is None:
            yield at_entry(e, config, Level.ERROR, rule,
                           f"'{e.key}' must be {expected}, not '{e.value}'", value=True)


@register("fb-bool", Level.ERROR, "fluentbit",
          "boolean property whose value is not on/off, true/false or yes/no")
def check_bool(view: FluentBitView) -> Iterator[Problem]:
    return _check_type(view, "bool")


@register("fb-size", Level.ERROR, "fluentbit",
          "size property that does not parse (number with optional K/M/G, decimal)")
def check_size(view: FluentBitView) -> Iterator[Problem]:
    return _check_type(view, "size")


@register("fb-time", Level.ERROR, "fluentbit",
          "duration property that does not parse (integer with optional s/m/h/d)")
def check_time(view: FluentBitView) -> Iterator[Problem]:
    return _check_type(view, "time")


@register("fb-int", Level.ERROR, "fluentbit",
          "integer/number property that does not parse (Fluent Bit would read 0)")
def check_int(view: FluentBitView) -> Iterator[Problem]:
    yield from _check_type(view, "int")
    yield from _check_type(view, "double")


@register("fb-port", Level.ERROR, "fluentbit", "port that is not a number in 1..65535")
def check_port(view: FluentBitView) -> Iterator[Problem]:
    for config, e, _opt in _typed_entries(view):
        if e.name not in _PORT_KEYS:
            continue
        port = options.parse_int(e.value)
        if port is None:
            yield at_entry(e, config, Level.ERROR, "fb-port",
                           f"'{e.key}' must be a number, not '{e.value}' (Fluent Bit's atoi "
                           "would read 0)", value=True)
        elif not 1 <= port <= 65535:
            yield at_entry(e, config, Level.ERROR, "fb-port",
                           f"port {port} is out of range 1..65535", value=True)


@register("fb-enum", Level.ERROR, "fluentbit",
          "value not among those the key accepts (storage.type, nest Operation, ...)")
def check_enum(view: FluentBitView) -> Iterator[Problem]:
    for config in view.fluentbit:
        for s in config.sections:
            if s.kind == SERVICE:
                kind, plugin = "service", "*"
            elif s.kind in ("input", "filter", "output"):
                kind, plugin = s.kind, s.plugin
            else:
                continue
            for e in s.entries:
                values = options.enum_values(kind, plugin, e.name)
                if values is None or e.unresolved:
                    continue
                if e.value.lower() not in (v.lower() for v in values):
                    yield at_entry(e, config, Level.ERROR, "fb-enum",
                                   f"'{e.key}' must be one of {', '.join(values)}, not "
                                   f"'{e.value}'", value=True)
