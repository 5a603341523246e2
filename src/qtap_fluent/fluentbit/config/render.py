"""Render ``model`` sections as Fluent Bit text: classic ``.conf`` or YAML. Deterministic.

Classic: section headers at column 0, keys indented four spaces and aligned, one space at least
between key and value (Fluent Bit splits on the first space). YAML: ``service``/``pipeline``
(``inputs``/``filters``/``outputs``) and ``parsers``; repeated keys become lists; every value is
written as a string, quoted when YAML would read it as something else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from qtap_fluent.fluentbit.config.model import (
    FILTER,
    INPUT,
    MULTILINE_PARSER,
    OUTPUT,
    PARSER,
    SERVICE,
    Section,
)

INDENT = "    "

_CLASSIC_HEADERS = {
    SERVICE: "SERVICE",
    INPUT: "INPUT",
    FILTER: "FILTER",
    OUTPUT: "OUTPUT",
    PARSER: "PARSER",
    MULTILINE_PARSER: "MULTILINE_PARSER",
}


def _check_value(key: str, value: str) -> None:
    # A newline in a value would start a new line of config (config injection, see
    # fluent-operator GHSA-2j8x-46rv-qmpq); an empty value is a Fluent Bit load error.
    if "\n" in value or "\r" in value:
        raise ValueError(f"value of {key!r} contains a line break: {value!r}")
    if not value.strip():
        raise ValueError(f"value of {key!r} is empty")


def render_classic(sections: Iterable[Section], *, header_comment: str | None = None) -> str:
    """Classic-format text for ``sections`` (``[SERVICE]``, ``[INPUT]``, ..., ``[PARSER]``)."""
    out: list[str] = []
    if header_comment:
        out.extend(f"# {line}".rstrip() for line in header_comment.splitlines())
        out.append("")
    for section in sections:
        if section.comment:
            out.extend(f"# {line}".rstrip() for line in section.comment.splitlines())
        out.append(f"[{_CLASSIC_HEADERS.get(section.kind, section.header.upper())}]")
        width = max((len(e.key) for e in section.entries), default=0) + 1
        for e in section.entries:
            _check_value(e.key, e.value)
            out.append(f"{INDENT}{e.key.ljust(width)}{e.value}")
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


_PLAIN = re.compile(r"^[A-Za-z0-9_/][A-Za-z0-9_./ -]*(?<! )$")
_YAML_SPECIAL_WORDS = re.compile(
    r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|"
    r"null|Null|NULL|~)$"
)
_NUMBERISH = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?$")


def yaml_scalar(value: str) -> str:
    """``value`` as a YAML scalar that any YAML reader gives back as exactly that text.

    Words Fluent Bit reads itself (``on``, ``5``, ``50M``) stay plain: its libyaml loader keeps
    scalars as text. Anything with YAML syntax in it is single-quoted.
    """
    if not value.isprintable():
        # Single quotes cannot carry control characters; JSON string syntax is valid YAML.
        return json.dumps(value)
    if _PLAIN.match(value) and not _YAML_SPECIAL_WORDS.match(value) and "  " not in value:
        return value
    if _YAML_SPECIAL_WORDS.match(value) or _NUMBERISH.match(value):
        return value  # Fluent Bit reads scalars as text; "On" and "5" mean what they say
    return "'" + value.replace("'", "''") + "'"


def _yaml_block(sections: list[Section], indent: str) -> list[str]:
    out: list[str] = []
    for section in sections:
        if section.comment:
            out.extend(f"{indent}# {line}".rstrip() for line in section.comment.splitlines())
        first = True
        for key, values in _grouped(section):
            lead = f"{indent}- " if first else f"{indent}  "
            first = False
            if len(values) == 1:
                out.append(f"{lead}{key}: {yaml_scalar(values[0])}")
            else:
                out.append(f"{lead}{key}:")
                out.extend(f"{indent}    - {yaml_scalar(v)}" for v in values)
    return out


def _grouped(section: Section) -> list[tuple[str, list[str]]]:
    """Entries keyed by lower-case name, repeated keys gathered in first-seen order."""
    order: list[str] = []
    values: dict[str, list[str]] = {}
    for e in section.entries:
        _check_value(e.key, e.value)
        if e.name not in values:
            order.append(e.name)
            values[e.name] = []
        values[e.name].append(e.value)
    return [(k, values[k]) for k in order]


def render_yaml(sections: Iterable[Section], *, header_comment: str | None = None) -> str:
    """YAML-format text: ``service:``, ``pipeline:`` and ``parsers:`` blocks."""
    sections = list(sections)
    out: list[str] = []
    if header_comment:
        out.extend(f"# {line}".rstrip() for line in header_comment.splitlines())
        out.append("")
    service = [s for s in sections if s.kind == SERVICE]
    if service:
        # Several [SERVICE] sections merge into one mapping, as Fluent Bit merges them.
        merged = Section(kind=SERVICE, header="service",
                         entries=[e for s in service for e in s.entries])
        out.append("service:")
        for key, values in _grouped(merged):
            if len(values) == 1:
                out.append(f"  {key}: {yaml_scalar(values[0])}")
            else:
                out.append(f"  {key}:")
                out.extend(f"    - {yaml_scalar(v)}" for v in values)
    blocks = [("inputs", INPUT), ("filters", FILTER), ("outputs", OUTPUT)]
    if any(s.kind in (INPUT, FILTER, OUTPUT) for s in sections):
        out.append("")
        out.append("pipeline:")
        for name, kind in blocks:
            items = [s for s in sections if s.kind == kind]
            if items:
                out.append(f"  {name}:")
                out.extend(_yaml_block(items, "    "))
    for name, kind in (("parsers", PARSER), ("multiline_parsers", MULTILINE_PARSER)):
        items = [s for s in sections if s.kind == kind]
        if items:
            if out:
                out.append("")
            out.append(f"{name}:")
            out.extend(_yaml_block(items, "  "))
    text = "\n".join(out).lstrip("\n")
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text + "\n"
