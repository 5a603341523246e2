"""Tag routing: every filter/output has a Match, every Match can match some input's tag, every
input's records reach some output (fluentbit.md §3.5; FB ``src/flb_router.c``: ``*`` wildcards,
case-sensitive; ``Match_Regex`` wins over ``Match``).

Tags of inputs: ``Tag`` when set (tail's ``*`` stands for the file path, so it stays a
wildcard); otherwise the instance name ``<plugin>.<n>``, except ``forward``, whose records keep
the sender's tag (plus ``tag_prefix``): those are ``view.forward_tags`` when known, else
"anything" and routing checks give them the benefit of the doubt. rewrite_tag filters add the
tags of their rules (``$...`` parts become wildcards).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from qtap_fluent.fluentbit.config.checks.base import (
    FluentBitView,
    at_entry,
    at_section,
    split_tokens,
)
from qtap_fluent.fluentbit.config.model import FILTER, INPUT, OUTPUT, ConfigFile, Section
from qtap_fluent.problems import Level, Problem
from qtap_fluent.validate.registry import register

_TEMPLATE = re.compile(r"\$(\w+|\{[^}]*\})(\[[^\]]*\])*")
_GO_TEMPLATE = re.compile(r"\{\{.*?\}\}")


@dataclass(frozen=True, slots=True)
class TagSource:
    """Where records enter routing: an input or a rewrite_tag rule."""

    section: Section
    tags: tuple[str, ...] | None  #: tag patterns (``*`` wildcards); None = any tag at all
    is_input: bool = True


def globs_intersect(a: str, b: str) -> bool:
    """Can some tag match both ``*``-patterns ``a`` and ``b``? (A plain tag is a pattern.)"""
    if len(a) * len(b) > 1_000_000:  # hostile sizes: assume they may meet
        return True
    n, m = len(a), len(b)
    # ok[i][j]: the suffixes a[i:] and b[j:] can match a common string (filled backwards).
    ok = [[False] * (m + 1) for _ in range(n + 1)]
    ok[n][m] = True
    for i in range(n, -1, -1):
        for j in range(m, -1, -1):
            if i == n and j == m:
                continue
            if i < n and a[i] == "*":
                ok[i][j] = ok[i + 1][j] or (j < m and ok[i][j + 1])
            elif j < m and b[j] == "*":
                ok[i][j] = ok[i][j + 1] or (i < n and ok[i + 1][j])
            else:
                ok[i][j] = i < n and j < m and a[i] == b[j] and ok[i + 1][j + 1]
    return ok[0][0]


def tag_sources(view: FluentBitView, config: ConfigFile) -> list[TagSource]:
    """Every place records of ``config`` get a tag."""
    out: list[TagSource] = []
    counters: dict[str, int] = {}
    for s in config.of(INPUT):
        n = counters.get(s.plugin, 0)
        counters[s.plugin] = n + 1
        tag = s.entry("tag")
        if tag is not None and tag.unresolved:
            out.append(TagSource(s, None))
        elif tag is not None and tag.value:
            out.append(TagSource(s, (tag.value,)))
        elif s.plugin == "forward":
            prefix = s.get("tag_prefix") or ""
            # Docker log-driver tags may be templates ({{.Name}}): those parts are wildcards.
            known = tuple(prefix + _GO_TEMPLATE.sub("*", t) for t in view.forward_tags)
            out.append(TagSource(s, known or None))
        else:
            out.append(TagSource(s, (f"{s.plugin}.{n}",)))
    for s in config.of(FILTER):
        if s.plugin != "rewrite_tag":
            continue
        tags = []
        for e in s.get_all("rule"):
            tokens = split_tokens(e.value)
            if len(tokens) == 4:
                tags.append(_TEMPLATE.sub("*", tokens[2]))
        if tags:
            out.append(TagSource(s, tuple(tags), is_input=False))
    return out


def _onig_search(pattern: str, tag: str) -> bool | None:
    import onigurumacffi

    try:
        return onigurumacffi.compile(pattern).search(tag) is not None
    except (onigurumacffi.OnigError, ValueError):
        return None


def matches(section: Section, tags: tuple[str, ...] | None) -> bool:
    """Could ``section`` (a filter or output) receive records with one of ``tags``?"""
    if tags is None:
        return True
    regex = section.entry("match_regex")
    if regex is not None:
        if regex.unresolved:
            return True
        for tag in tags:
            if "*" in tag:
                return True  # a wildcard tag: cannot tell
            if _onig_search(regex.value, tag) is not False:
                return True
        return False
    match = section.entry("match")
    if match is None:
        return False
    if match.unresolved:
        return True
    return any(globs_intersect(match.value, tag) for tag in tags)


def _routed(config: ConfigFile) -> Iterator[Section]:
    for s in config.sections:
        if s.kind in (FILTER, OUTPUT):
            yield s


@register("fb-no-match", Level.ERROR, "fluentbit",
          "filter or output without Match/Match_Regex: it receives no records")
def no_match(view: FluentBitView) -> Iterator[Problem]:
    for config in view.fluentbit:
        for s in _routed(config):
            if s.entry("match") is None and s.entry("match_regex") is None:
                what = ("Fluent Bit refuses to start" if s.kind == FILTER
                        else "it receives no records")
                yield at_section(s, config, Level.ERROR, "fb-no-match",
                                 f"{s.kind} '{s.plugin}' has no Match or Match_Regex: {what}")


@register("fb-match-no-input", Level.WARNING, "fluentbit",
          "Match/Match_Regex pattern that matches no input's tag")
def match_no_input(view: FluentBitView) -> Iterator[Problem]:
    for config in view.fluentbit:
        sources = tag_sources(view, config)
        if any(src.tags is None for src in sources):
            continue  # a dynamic tag could match anything
        known = sorted({t for src in sources for t in src.tags or ()})
        for s in _routed(config):
            entry = s.entry("match_regex") or s.entry("match")
            if entry is None or matches(s, tuple(known)):
                continue
            listed = ", ".join(known) or "no inputs"
            yield at_entry(entry, config, Level.WARNING, "fb-match-no-input",
                           f"{entry.key} '{entry.value}' of {s.kind} '{s.plugin}' matches no "
                           f"input's tag (tags: {listed})", value=True)


@register("fb-input-unconsumed", Level.WARNING, "fluentbit",
          "input whose records no output matches (they are dropped)")
def input_unconsumed(view: FluentBitView) -> Iterator[Problem]:
    for config in view.fluentbit:
        outputs = list(config.of(OUTPUT))
        for src in tag_sources(view, config):
            if not src.is_input or src.tags is None:
                continue
            if any(matches(o, src.tags) for o in outputs):
                continue
            yield at_section(src.section, config, Level.WARNING, "fb-input-unconsumed",
                             f"no output matches the records of input '{src.section.plugin}' "
                             f"(tag {', '.join(src.tags)}): they are dropped")
