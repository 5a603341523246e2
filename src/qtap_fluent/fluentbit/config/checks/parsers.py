"""Parsers files and the parser filter: Parsers_File exists, every parser is well formed and its
regex compiles in Oniguruma, and the parser filter names parsers that exist (fluentbit.md §3.3;
dry-run checks the first three, not the last)."""

from __future__ import annotations

import os
from collections.abc import Iterator

from qtap_fluent.fluentbit.config import options
from qtap_fluent.fluentbit.config.checks.base import (
    FluentBitView,
    at_entry,
    at_section,
    onig_error,
    parsers_file_paths,
    split_tokens,
)
from qtap_fluent.fluentbit.config.model import FILTER, MULTILINE_PARSER, PARSER, ConfigFile
from qtap_fluent.problems import Level, Problem
from qtap_fluent.validate.registry import register

#: ``Format`` values of a [PARSER] (FB src/flb_parser.c).
PARSER_FORMATS = ("json", "regex", "ltsv", "logfmt")
#: Multiline parsers Fluent Bit builds in (FB src/multiline/flb_ml_parser_*.c).
BUILTIN_MULTILINE = ("docker", "cri", "go", "python", "java", "ruby")


def all_parsers_files(view: FluentBitView) -> list[ConfigFile]:
    """Every parsers file of the deployment once: standalone ones and those the mains name."""
    seen: dict[str, ConfigFile] = {}
    for pf in view.parsers:
        seen.setdefault(os.path.abspath(pf.path), pf)
    for config in view.fluentbit:
        for pf in view.parsers_for(config):
            seen.setdefault(os.path.abspath(pf.path), pf)
    return list(seen.values())


@register("fb-parsers-file", Level.ERROR, "fluentbit",
          "Parsers_File names a file that does not exist (Fluent Bit refuses to start)")
def parsers_file_exists(view: FluentBitView) -> Iterator[Problem]:
    for config in view.fluentbit:
        for entry, path in parsers_file_paths(view, config):
            if entry.unresolved:
                continue
            if not os.path.isfile(path):
                yield at_entry(entry, config, Level.ERROR, "fb-parsers-file",
                               f"Parsers_File '{entry.value}' does not exist (looked for "
                               f"{path})", value=True)


@register("fb-parser-definition", Level.ERROR, "parsers",
          "parser without Name or Format, unknown Format, regex parser without Regex, "
          "parser name defined twice")
def parser_definition(view: FluentBitView) -> Iterator[Problem]:
    for pf in all_parsers_files(view):
        names: dict[str, int] = {}
        for s in pf.sections:
            if s.kind not in (PARSER, MULTILINE_PARSER):
                continue
            rule = "fb-parser-definition"
            name = s.entry("name")
            if name is None or not name.value:
                yield at_section(s, pf, Level.ERROR, rule, "parser without Name")
            else:
                key = f"{s.kind}:{name.value}"
                if key in names:
                    yield at_entry(name, pf, Level.ERROR, rule,
                                   f"parser '{name.value}' is already defined at line "
                                   f"{names[key]}", value=True)
                names.setdefault(key, name.span.line if name.span else 0)
            if s.kind == MULTILINE_PARSER:
                continue
            fmt = s.entry("format")
            if fmt is None:
                yield at_section(s, pf, Level.ERROR, rule,
                                 "parser without Format (json, regex, ltsv or logfmt)")
            elif fmt.value.lower() not in PARSER_FORMATS:
                yield at_entry(fmt, pf, Level.ERROR, rule,
                               f"unknown parser Format '{fmt.value}' (json, regex, ltsv or "
                               "logfmt)", value=True)
            elif fmt.value.lower() == "regex" and s.entry("regex") is None:
                yield at_section(s, pf, Level.ERROR, rule, "regex parser without Regex")


@register("fb-parser-key", Level.WARNING, "parsers",
          "key Fluent Bit does not read in a [PARSER]/[MULTILINE_PARSER] (silently ignored)")
def parser_key(view: FluentBitView) -> Iterator[Problem]:
    for pf in all_parsers_files(view):
        for s in pf.sections:
            if s.kind not in (PARSER, MULTILINE_PARSER):
                continue
            keys = options.parser_keys(s.kind)
            for e in s.entries:
                if e.name in keys:
                    continue
                hint = options.suggest(keys, e.name)
                yield at_entry(e, pf, Level.WARNING, "fb-parser-key",
                               f"'{e.key}' is not a {s.kind} key; Fluent Bit ignores it"
                               + (f" (did you mean '{hint}'?)" if hint else ""))


@register("fb-parser-regex", Level.ERROR, "parsers",
          "parser or multiline rule regex that does not compile in Oniguruma (Ruby syntax)")
def parser_regex(view: FluentBitView) -> Iterator[Problem]:
    for pf in all_parsers_files(view):
        for s in pf.sections:
            if s.kind == PARSER:
                for e in s.get_all("regex"):
                    err = onig_error(e.value)
                    if err:
                        yield at_entry(e, pf, Level.ERROR, "fb-parser-regex",
                                       f"Regex does not compile: {err}", value=True)
            elif s.kind == MULTILINE_PARSER:
                for e in s.get_all("rule"):  # classic: rule "state" "/regex/" "next"
                    tokens = split_tokens(e.value)
                    if len(tokens) < 3:
                        yield at_entry(e, pf, Level.ERROR, "fb-parser-regex",
                                       "a multiline rule is: rule \"state\" \"/regex/\" "
                                       "\"next_state\"", value=True)
                        continue
                    pattern = tokens[1]
                    if len(pattern) >= 2 and pattern[0] == "/" and pattern[-1] == "/":
                        pattern = pattern[1:-1]
                    err = onig_error(pattern)
                    if err:
                        yield at_entry(e, pf, Level.ERROR, "fb-parser-regex",
                                       f"rule regex does not compile: {err}", value=True)
                for child in s.children:  # YAML: rules: [{state, regex, next_state}]
                    for e in child.get_all("regex"):
                        err = onig_error(e.value.strip("/") if e.value.startswith("/")
                                         else e.value)
                        if err:
                            yield at_entry(e, pf, Level.ERROR, "fb-parser-regex",
                                           f"rule regex does not compile: {err}", value=True)


def defined_parsers(view: FluentBitView, config: ConfigFile) -> set[str]:
    """Names of the [PARSER]s a main config can use."""
    names: set[str] = set()
    for pf in view.parsers_for(config):
        for s in pf.of(PARSER):
            name = s.get("name")
            if name:
                names.add(name)
    return names


@register("fb-parser-filter", Level.ERROR, "fluentbit",
          "parser filter without Key_Name or Parser, or naming a parser no Parsers_File defines")
def parser_filter(view: FluentBitView) -> Iterator[Problem]:
    for config in view.fluentbit:
        filters = [s for s in config.of(FILTER) if s.plugin == "parser"]
        if not filters:
            continue
        known = defined_parsers(view, config)
        for s in filters:
            if s.entry("key_name") is None:
                yield at_section(s, config, Level.ERROR, "fb-parser-filter",
                                 "parser filter without Key_Name: Fluent Bit refuses to start "
                                 "('missing key_name')")
            parsers = s.get_all("parser")
            if not parsers:
                yield at_section(s, config, Level.ERROR, "fb-parser-filter",
                                 "parser filter without Parser")
            for e in parsers:
                if e.unresolved or e.value in known:
                    continue
                where = ", ".join(sorted(known)) or "none: no Parsers_File is loaded"
                yield at_entry(e, config, Level.ERROR, "fb-parser-filter",
                               f"parser '{e.value}' is not defined in any Parsers_File "
                               f"(defined: {where})", value=True)
