"""Fluent Bit configuration as data: files of sections of ordered key/value entries.

One generic shape serves both formats (classic ``.conf`` and YAML) and both directions: loaders
fill it with positions, renderers turn it into text, validator rules read it. It mirrors Fluent
Bit's own ``flb_cf`` (sections with ordered properties, repeated keys kept), not a typed schema:
the option facts live in ``options.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from qtap_fluent.problems import Problem

#: Section kinds, as Fluent Bit's ``get_section_type`` names them.
SERVICE = "service"
INPUT = "input"
FILTER = "filter"
OUTPUT = "output"
PARSER = "parser"
MULTILINE_PARSER = "multiline_parser"
CUSTOM = "custom"
PLUGINS = "plugins"
UPSTREAM = "upstream"
NODE = "node"
STREAM_TASK = "stream_task"
OTHER = "other"

PLUGIN_KINDS = (INPUT, FILTER, OUTPUT, CUSTOM)


@dataclass(frozen=True, slots=True, kw_only=True)
class Span:
    """Where something was written: file path and 1-based line and column."""

    path: str
    line: int
    col: int


@dataclass(slots=True, kw_only=True)
class Entry:
    """One ``key value`` line (classic) or one ``key: value`` pair / list item (YAML)."""

    key: str  #: as written
    value: str
    span: Span | None = None
    value_span: Span | None = None
    raw: str | None = None  #: the value as written, before ``${VAR}`` expansion (loaders)
    unresolved: tuple[str, ...] = ()  #: variables the value used that were not set (loaders)

    @property
    def name(self) -> str:
        """The key as Fluent Bit matches it: case-insensitive."""
        return self.key.lower()


@dataclass(slots=True, kw_only=True)
class Section:
    """``[INPUT]``/``[FILTER]``/... or one item of a YAML ``pipeline`` list."""

    kind: str
    header: str  #: the name as written (``INPUT``, ``inputs``, ...)
    entries: list[Entry] = field(default_factory=list)
    span: Span | None = None
    comment: str | None = None  #: rendered above the section by the renderers
    children: list[Section] = field(default_factory=list)  #: groups, processors, rules

    def entry(self, name: str) -> Entry | None:
        """The last entry named ``name`` (case-insensitive): the one Fluent Bit applies."""
        name = name.lower()
        for e in reversed(self.entries):
            if e.name == name:
                return e
        return None

    def get(self, name: str, default: str | None = None) -> str | None:
        e = self.entry(name)
        return e.value if e is not None else default

    def get_all(self, name: str) -> list[Entry]:
        name = name.lower()
        return [e for e in self.entries if e.name == name]

    def add(self, key: str, value: object) -> Section:
        """Append ``key value`` (for building configs); returns self for chaining."""
        self.entries.append(Entry(key=key, value=_text(value)))
        return self

    @property
    def plugin(self) -> str:
        """The plugin name, lower-cased (``forward://host:port`` gives ``forward``)."""
        name = (self.get("name") or "").strip().lower()
        return name.split("://", 1)[0]


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "On" if value else "Off"
    return str(value)


@dataclass(slots=True, kw_only=True)
class ConfigFile:
    """One loaded (or to-be-rendered) Fluent Bit file, with what went wrong while loading it."""

    path: str
    format: str  #: "classic" or "yaml"
    sections: list[Section] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)  #: @SET / YAML env
    includes: list[str] = field(default_factory=list)  #: resolved paths of included files
    problems: list[Problem] = field(default_factory=list)

    def of(self, kind: str) -> Iterator[Section]:
        return (s for s in self.sections if s.kind == kind)

    def service(self) -> Section:
        """All ``[SERVICE]`` sections merged, as Fluent Bit does."""
        merged = Section(kind=SERVICE, header="SERVICE")
        for s in self.of(SERVICE):
            merged.entries.extend(s.entries)
            if merged.span is None:
                merged.span = s.span
        return merged
