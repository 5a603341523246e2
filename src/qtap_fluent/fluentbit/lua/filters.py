"""The bundled Lua filters for Fluent Bit: one registry, and the script renderer ``gen`` uses.

Each filter is a script asset (``assets/lua/qtap_<name>.lua``) that reads a ``local CONFIG``
table. :func:`render_script` fills that table from validated parameters and pastes the shared
helpers (``assets/lua/qtap_common.lua``) in between, so the result is one self-contained file
for ``[FILTER] Name lua`` / ``script``. Same parameters give the same bytes.

``gen`` writes ``script_filename(name)`` next to the config and emits the options of
:func:`filter_options` (``script``, ``call``, plus what the filter needs from Fluent Bit, e.g.
``time_as_table``). Fluent Bit resolves a relative ``script`` against the config directory.

How issue 8's ``gen`` flags map onto parameters: ``--redact`` enables ``redact``, with
``--redact-header NAME`` -> ``headers`` and ``--redact-query NAME`` -> ``query_params`` (both
extend the defaults of :mod:`qtap_fluent.redact`); ``--enrich`` -> ``enrich``;
``--split-payloads`` -> ``split_payloads``; ``--drop-domain D`` -> ``drop`` ``domains`` and
``--drop-status LOW-HIGH`` -> ``drop`` ``status_ranges`` (:func:`parse_range`);
``--unwrap-qtap`` -> ``qtap_unwrap``. Emit enabled filters in :data:`RECOMMENDED_ORDER`.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from qtap_fluent import redact
from qtap_fluent.errors import UsageError
from qtap_fluent.fluentbit.config.model import FILTER, Section
from qtap_fluent.fluentbit.lua.params import (
    Param,
    check_value,
    dedup,
    lua_literal,
    lua_pattern_problem,
    parse_range,
)

__all__ = [
    "COMMON_ASSET", "LUA_FILTERS", "QTAP_INT_KEYS", "RECOMMENDED_ORDER", "LuaFilter", "Param",
    "check_params",
    "filter_options", "filter_section", "get", "lua_literal", "lua_pattern_problem",
    "parse_range", "render_script", "script_filename",
]

COMMON_ASSET = "qtap_common.lua"

#: Qtap's integer fields (qtap.md §3.1), written as int64 by Fluent Bit whatever Lua made of
#: them (``type_int_key``). Only set where the whole record comes from Qtap's JSON
#: (``qtap_unwrap``): Fluent Bit matches a Lua key that is a *prefix* of a configured key
#: (``strncmp`` with the Lua key's length, FB ``src/flb_lua.c``), so on pass-through records a
#: foreign ``duration: 1.5`` would be truncated to 1. Integral numbers become ints anyway.
QTAP_INT_KEYS = "status duration_ms bytes_sent bytes_received"


@dataclass(frozen=True, slots=True, kw_only=True)
class LuaFilter:
    """A bundled filter: what Fluent Bit needs to run it and what it can be told."""

    name: str
    asset: str  #: script asset under ``assets/lua/``; also the file name ``gen`` writes
    call: str  #: the global function Fluent Bit calls (``call``)
    doc: str
    params: Mapping[str, Param] = field(default_factory=dict)
    #: extra ``[FILTER]`` options, in order (beyond Name, Match, script, call)
    options: tuple[tuple[str, str], ...] = ()
    #: turns checked params into the CONFIG table (default: the params themselves)
    build: Callable[[dict[str, Any]], dict[str, Any]] | None = None


def _redact_config(p: dict[str, Any]) -> dict[str, Any]:
    """Defaults from :mod:`qtap_fluent.redact` (one source of truth) plus the user's lists."""
    cfg: dict[str, Any] = {
        "mask": p["mask"],
        "url_headers": sorted({h.lower() for h in redact.URL_HEADERS}),
    }
    lists = (
        ("headers", "header_patterns", redact.DEFAULT_HEADERS),
        ("query_params", "query_patterns", redact.DEFAULT_QUERY_PARAMS),
        ("json_keys", "json_key_patterns", redact.DEFAULT_JSON_KEYS),
    )
    for names_key, pats_key, defaults in lists:
        names = list(p[names_key]) + ([] if p["replace_defaults"] else list(defaults))
        exact = sorted({n.lower() for n in names if "*" not in n})
        globs = [redact.glob_to_lua_pattern(n) for n in names if "*" in n]
        cfg[names_key] = exact
        cfg[pats_key] = dedup(sorted(globs) + list(p[pats_key]))
    return cfg


LUA_FILTERS: dict[str, LuaFilter] = {
    f.name: f
    for f in (
        LuaFilter(
            name="redact",
            asset="qtap_redact.lua",
            call="qtap_redact",
            doc="mask secret headers, query parameters and JSON body keys (default list "
            "shared with the agent)",
            params={
                "headers": Param("names", (), "extra header names (globs with *)"),
                "query_params": Param("names", (), "extra query parameter names"),
                "json_keys": Param("names", (), "extra JSON body keys"),
                "header_patterns": Param("patterns", (), "Lua patterns on lower-cased names"),
                "query_patterns": Param("patterns", (), "Lua patterns on lower-cased names"),
                "json_key_patterns": Param("patterns", (), "Lua patterns on lower-cased keys"),
                "mask": Param("str", redact.DEFAULT_MASK, "replacement value"),
                "replace_defaults": Param("bool", False, "use only the given lists"),
            },
            build=_redact_config,
        ),
        LuaFilter(
            name="enrich",
            asset="qtap_enrich.lua",
            call="qtap_enrich",
            doc="add host, path, query, status_class (2xx..5xx) and duration_bucket",
            params={
                "prefix": Param("str", "", "prefix of the added keys"),
                "duration_buckets_ms": Param(
                    "bounds", (100, 1000, 10000), "ascending bucket bounds in ms"
                ),
            },
        ),
        LuaFilter(
            name="split_payloads",
            asset="qtap_split_payloads.lua",
            call="qtap_split_payloads",
            doc="one summary record plus one record per body, grouped by s3_key",
            params={
                "key_prefix": Param("str", "qtap", "first segment of s3_key"),
                "min_body_bytes": Param("int", 0, "smaller bodies stay inline"),
                "decode_bodies": Param("bool", True, "store body bytes, not base64"),
            },
            # whole seconds for the date in the key, without double rounding
            options=(("time_as_table", "On"),),
        ),
        LuaFilter(
            name="drop",
            asset="qtap_drop.lua",
            call="qtap_drop",
            doc="drop (or keep only) transactions by domain, URL pattern, status or method",
            params={
                "domains": Param("names", (), "domains, subdomains included"),
                "url_patterns": Param("patterns", (), "Lua patterns searched in request.url"),
                "status_ranges": Param("ranges", (), "inclusive (low, high) status ranges"),
                "methods": Param("names", (), "HTTP methods"),
                "mode": Param("choice:drop|keep", "drop", "drop matches, or keep only them"),
            },
        ),
        LuaFilter(
            name="qtap_unwrap",
            asset="qtap_unwrap.lua",
            call="qtap_unwrap",
            doc="turn Qtap's stdout object-store line (data_base64) into the transaction",
            params={
                "drop_other": Param("bool", False, "drop lines that are not transactions"),
                "keep_fields": Param("names", (), "outer fields copied into the transaction"),
            },
            options=(("type_int_key", QTAP_INT_KEYS),),
        ),
    )
}


#: Order for the filters that are enabled: unwrap first (it makes the transaction visible to
#: the rest), drop before any work is spent, redact before anything is copied (split bodies
#: must already be masked), enrich, then split last (it multiplies records and strips bodies).
RECOMMENDED_ORDER: tuple[str, ...] = ("qtap_unwrap", "drop", "redact", "enrich", "split_payloads")


def get(name: str) -> LuaFilter:
    """The filter called ``name``, or a UsageError listing the known ones."""
    try:
        return LUA_FILTERS[name]
    except KeyError:
        known = ", ".join(sorted(LUA_FILTERS))
        raise UsageError(f"unknown Lua filter {name!r} (known: {known})") from None


def script_filename(name: str) -> str:
    """The file name ``gen`` writes the rendered script to, e.g. ``qtap_redact.lua``."""
    return get(name).asset


def check_params(name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """All parameters of filter ``name``, defaults filled in; a clear UsageError otherwise."""
    f = get(name)
    given = dict(params or {})
    unknown = sorted(set(given) - set(f.params))
    if unknown:
        raise UsageError(
            f"Lua filter {name!r}: unknown parameter {unknown[0]!r} "
            f"(known: {', '.join(sorted(f.params))})"
        )
    return {
        key: check_value(name, key, spec, given.get(key, spec.default))
        for key, spec in f.params.items()
    }


def render_script(name: str, params: Mapping[str, Any] | None = None) -> str:
    """The complete script for filter ``name``: CONFIG, shared helpers, then the filter."""
    f = get(name)
    checked = check_params(name, params)
    config = f.build(checked) if f.build else checked
    header = (
        f"-- qtap-fluent Lua filter '{f.name}': {f.doc}.\n"
        "-- Generated by qtap-fluent; edit the parameters and re-run `qtap-fluent gen`.\n"
        f"-- Fluent Bit: [FILTER] Name lua, call {f.call}\n\n"
    )
    return (
        header
        + "local CONFIG = {\n"
        + "".join(f"  [{lua_literal(k)}] = {lua_literal(config[k])},\n" for k in sorted(config))
        + "}\n\n"
        + _asset(COMMON_ASSET)
        + "\n"
        + _asset(f.asset)
    )


def filter_options(name: str, script_path: str | None = None) -> list[tuple[str, str]]:
    """The ``[FILTER]`` options after Name and Match: script, call, and the filter's needs."""
    f = get(name)
    return [("script", script_path or f.asset), ("call", f.call), *f.options]


def filter_section(name: str, match: str, script_path: str | None = None) -> Section:
    """A ready ``[FILTER] Name lua`` section for the config model."""
    f = get(name)
    section = Section(kind=FILTER, header="FILTER", comment=f"qtap-fluent {f.name}: {f.doc}")
    section.add("Name", "lua").add("Match", match)
    for key, value in filter_options(name, script_path):
        section.add(key, value)
    return section


def _asset(name: str) -> str:
    return (importlib.resources.files("qtap_fluent") / "assets" / "lua" / name).read_text(
        encoding="utf-8"
    )
