"""Sections, plugin names and property names: what ``fluent-bit --dry-run`` checks, and the
``[SERVICE]`` keys and section names it lets through silently (fluentbit.md §2.1, §5)."""

from __future__ import annotations

from collections.abc import Iterator

from qtap_fluent.fluentbit.config import options
from qtap_fluent.fluentbit.config.checks.base import FluentBitView, at_entry, at_section
from qtap_fluent.fluentbit.config.model import (
    MULTILINE_PARSER,
    NODE,
    OTHER,
    PARSER,
    PLUGIN_KINDS,
    SERVICE,
    UPSTREAM,
    ConfigFile,
    Section,
)
from qtap_fluent.problems import Level, Problem
from qtap_fluent.validate.registry import register


def plugin_sections(config: ConfigFile) -> Iterator[Section]:
    """Input, filter, output and custom sections, in file order."""
    return (s for s in config.sections if s.kind in PLUGIN_KINDS)


@register("fb-unknown-section", Level.ERROR, "fluentbit",
          "section name Fluent Bit does not know: it drops the section silently")
def unknown_section(view: FluentBitView) -> Iterator[Problem]:
    for config in view.fluentbit:
        for s in config.sections:
            if s.kind == OTHER:
                yield at_section(s, config, Level.ERROR, "fb-unknown-section",
                                 f"unknown section [{s.header}]: Fluent Bit ignores it and "
                                 "everything in it")
            elif s.kind in (NODE, UPSTREAM) and config.format == "classic":
                yield at_section(s, config, Level.ERROR, "fb-unknown-section",
                                 f"[{s.header}] belongs in an upstream file (named by a "
                                 "forward output's Upstream), not in the main config")
    for pf in view.parsers:
        for s in pf.sections:
            if s.kind not in (PARSER, MULTILINE_PARSER):
                yield at_section(s, pf, Level.ERROR, "fb-unknown-section",
                                 f"section [{s.header}] in a parsers file is ignored (only "
                                 "[PARSER] and [MULTILINE_PARSER] are read)")


@register("fb-parser-in-main", Level.ERROR, "fluentbit",
          "[PARSER]/[MULTILINE_PARSER] in a main classic config (they belong in Parsers_File)")
def parser_in_main(view: FluentBitView) -> Iterator[Problem]:
    for config in view.fluentbit:
        if config.format != "classic":
            continue  # YAML main files may carry parsers:
        for s in config.sections:
            if s.kind in (PARSER, MULTILINE_PARSER):
                yield at_section(s, config, Level.ERROR, "fb-parser-in-main",
                                 f"[{s.header}] belongs in a file named by Parsers_File; "
                                 "Fluent Bit refuses to start with it in the main config")


@register("fb-missing-name", Level.ERROR, "fluentbit", "plugin section without Name")
def missing_name(view: FluentBitView) -> Iterator[Problem]:
    for config in view.fluentbit:
        for s in plugin_sections(config):
            if not s.plugin:
                yield at_section(s, config, Level.ERROR, "fb-missing-name",
                                 f"{s.kind} section has no Name: which plugin should run?")


@register("fb-unknown-plugin", Level.ERROR, "fluentbit",
          "Name is not a Fluent Bit 5.1.1 plugin of that kind")
def unknown_plugin(view: FluentBitView) -> Iterator[Problem]:
    for config in view.fluentbit:
        for s in plugin_sections(config):
            entry = s.entry("name")
            if entry is None or not s.plugin or entry.unresolved:
                continue
            if not options.plugin_known(s.kind, s.plugin):
                hint = options.suggest(options.plugin_names(s.kind), s.plugin)
                yield at_entry(entry, config, Level.ERROR, "fb-unknown-plugin",
                               f"no {s.kind} plugin named '{s.plugin}' in Fluent Bit 5.1.1"
                               + (f"; did you mean '{hint}'?" if hint else ""), value=True)


@register("fb-unknown-property", Level.ERROR, "fluentbit",
          "property not in the plugin's Fluent Bit 5.1.1 config map")
def unknown_property(view: FluentBitView) -> Iterator[Problem]:
    for config in view.fluentbit:
        for s in plugin_sections(config):
            table = options.options_of(s.kind, s.plugin)
            if table is None:
                continue  # plugin unknown, or one whose config map we do not ship
            for e in s.entries:
                if e.name == "name" or options.known(s.kind, s.plugin, e.name):
                    continue
                hint = options.suggest(set(table), e.name)
                yield at_entry(e, config, Level.ERROR, "fb-unknown-property",
                               f"{s.kind} '{s.plugin}' has no property '{e.key}'"
                               + (f"; did you mean '{hint}'?" if hint else ""))


@register("fb-duplicate-property", Level.ERROR, "fluentbit",
          "a property that may not repeat is set more than once")
def duplicate_property(view: FluentBitView) -> Iterator[Problem]:
    for config in view.fluentbit:
        for s in plugin_sections(config):
            if options.options_of(s.kind, s.plugin) is None:
                continue
            first: dict[str, int] = {}
            for e in s.entries:
                opt = options.option(s.kind, s.plugin, e.name)
                if e.name != "name" and (opt is None or opt.multi):
                    continue
                line = e.span.line if e.span else 0
                if e.name in first:
                    yield at_entry(e, config, Level.ERROR, "fb-duplicate-property",
                                   f"'{e.key}' is already set at line {first[e.name]}; "
                                   f"{s.kind} '{s.plugin}' takes it once")
                else:
                    first[e.name] = line


@register("fb-service-key", Level.WARNING, "fluentbit",
          "unknown [SERVICE] key: Fluent Bit ignores it silently")
def service_key(view: FluentBitView) -> Iterator[Problem]:
    table = options.service_options()
    for config in view.fluentbit:
        for s in config.of(SERVICE):
            for e in s.entries:
                if e.name in table:
                    continue
                hint = options.suggest(set(table), e.name)
                yield at_entry(e, config, Level.WARNING, "fb-service-key",
                               f"unknown service key '{e.key}' is ignored by Fluent Bit"
                               + (f"; did you mean '{hint}'?" if hint else ""))


@register("fb-log-level", Level.ERROR, "fluentbit",
          "Log_Level not one of off, error, warn, warning, info, debug, trace")
def log_level(view: FluentBitView) -> Iterator[Problem]:
    levels = options.log_levels()
    for config in view.fluentbit:
        for s in config.sections:
            if s.kind != SERVICE and s.kind not in PLUGIN_KINDS:
                continue
            for e in s.get_all("log_level"):
                if e.unresolved or e.value.strip().lower() in levels:
                    continue
                yield at_entry(e, config, Level.ERROR, "fb-log-level",
                               f"Log_Level '{e.value}' is not one of {', '.join(levels)}",
                               value=True)
