"""Load Fluent Bit config files (classic ``.conf``, YAML, parsers files) with positions.

The classic reader follows Fluent Bit 5.1.1's ``flb_cf_fluentbit.c`` line by line (see
``fluentbit.md`` §2.1): the first key line's indentation rules the whole file, key and value split
at the first *space*, keys matched case-insensitively, ``#`` only at line start, ``@INCLUDE`` and
``@SET`` metas. The YAML reader follows ``flb_cf_yaml.c`` (§2.4). Both fill the generic
``model.ConfigFile`` and never raise on bad input: whatever is wrong becomes a ``Problem`` in
``ConfigFile.problems``. Includes are resolved: their sections land in the including file's
``sections`` with spans naming the included file.
"""

from __future__ import annotations

import glob
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qtap_fluent import yamlpos
from qtap_fluent.fluentbit.config.model import (
    CUSTOM,
    FILTER,
    INPUT,
    MULTILINE_PARSER,
    NODE,
    OTHER,
    OUTPUT,
    PARSER,
    PLUGINS,
    SERVICE,
    STREAM_TASK,
    UPSTREAM,
    ConfigFile,
    Entry,
    Section,
    Span,
)
from qtap_fluent.problems import Level, Problem

#: Fluent Bit refuses to read more than this many files for one config (FLB_CF_FILE_NUM_LIMIT).
MAX_FILES = 1000
#: Ours: include chains deeper than this are refused (Fluent Bit has no limit but recursion).
MAX_INCLUDE_DEPTH = 64
#: Fluent Bit's classic reader gives up on lines longer than 32 MiB (``line_hard_limit``).
MAX_LINE = 32 * 1024 * 1024
#: Ours: files larger than this are not read at all.
MAX_FILE = 64 * 1024 * 1024

YAML_EXTENSIONS = (".yaml", ".yml")

#: Classic section names in ``get_section_type`` order: a header is of the first kind whose
#: word it is a case-insensitive *prefix* of (``[SERV]`` is a service section, ``[]`` too).
_SECTION_WORDS: tuple[tuple[str, str], ...] = (
    ("service", SERVICE),
    ("parser", PARSER),
    ("multiline_parser", MULTILINE_PARSER),
    ("stream_processor", STREAM_TASK),
    ("plugins", PLUGINS),
    ("upstream_servers", UPSTREAM),
    ("custom", CUSTOM),
    ("customs", CUSTOM),
    ("input", INPUT),
    ("inputs", INPUT),
    ("filter", FILTER),
    ("filters", FILTER),
    ("output", OUTPUT),
    ("outputs", OUTPUT),
)

_VAR = re.compile(r"\$\{([^}]*)\}")


def section_kind(name: str) -> str:
    """The kind Fluent Bit gives a ``[name]`` header (prefix match, case-insensitive)."""
    low = name.lower()
    for word, kind in _SECTION_WORDS:
        if word.startswith(low):
            return kind
    if low == "node":  # upstream files: [UPSTREAM] then [NODE] sections
        return NODE
    return OTHER


def yaml_key(key: str) -> str:
    """Fluent Bit's ``flb_cf_key_translate``: ``logLevel`` becomes ``log_level``.

    Only keys that start lower-case, contain no ``_`` and contain an upper-case letter change.
    """
    if key[:1].islower() and "_" not in key and any(c.isupper() for c in key):
        return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), key)
    return key


@dataclass(slots=True)
class _Ctx:
    """State shared by one main file and everything it includes."""

    root: ConfigFile
    root_dir: str
    env: Mapping[str, str]
    seen: set[str] = field(default_factory=set)
    stack: list[str] = field(default_factory=list)
    over_limit: bool = False

    def problem(self, span: Span, level: Level, rule: str, message: str) -> None:
        self.root.problems.append(Problem(path=span.path, line=span.line, col=span.col,
                                          level=level, rule=rule, message=message))


def load_file(path: str, *, env: Mapping[str, str] | None = None) -> ConfigFile:
    """Load ``path`` (YAML if it ends in ``.yaml``/``.yml``, like Fluent Bit; classic otherwise).

    ``env`` is the process environment ``${VAR}`` falls back to (default ``os.environ``).
    """
    fmt = "yaml" if path.lower().endswith(YAML_EXTENSIONS) else "classic"
    cf = ConfigFile(path=path, format=fmt)
    ctx = _Ctx(root=cf, root_dir=os.path.dirname(os.path.abspath(path)),
               env=os.environ if env is None else env)
    _read_file(ctx, path, fmt, None, 0)
    _expand_all(ctx)
    return cf


def load_text(text: str, path: str, fmt: str, *,
              env: Mapping[str, str] | None = None) -> ConfigFile:
    """Load ``text`` as if read from ``path``; ``fmt`` is ``"classic"`` or ``"yaml"``.

    Includes are resolved relative to ``path``'s directory.
    """
    cf = ConfigFile(path=path, format=fmt)
    ctx = _Ctx(root=cf, root_dir=os.path.dirname(os.path.abspath(path)),
               env=os.environ if env is None else env)
    if "\0" in text:
        line = text[: text.index("\0")].count("\n") + 1
        ctx.problem(Span(path=path, line=line, col=1), Level.ERROR, "fb-syntax",
                    "binary data (NUL byte): not a Fluent Bit config")
        return cf
    ctx.seen.add(os.path.realpath(path))
    ctx.stack.append(os.path.realpath(path))
    _parse(ctx, text, path, fmt, 0)
    _expand_all(ctx)
    return cf


# -- reading files and includes ------------------------------------------------------------------

def _read_file(ctx: _Ctx, path: str, fmt: str, where: Span | None, depth: int) -> None:
    """Read one file (main or included) into ``ctx.root``; problems go at ``where`` if given.

    An included file is read in the including file's format, as Fluent Bit's classic and YAML
    readers each read their own includes (a ``.yaml`` @INCLUDEd from a classic file is parsed
    as classic)."""
    at = where or Span(path=path, line=1, col=1)
    real = os.path.realpath(path)
    if real in ctx.stack:
        chain = " -> ".join(os.path.basename(p) for p in [*ctx.stack, real])
        ctx.problem(at, Level.ERROR, "fb-include", f"include cycle: {chain}")
        return
    if real in ctx.seen:
        ctx.problem(at, Level.ERROR, "fb-include",
                    f"{path} is included twice (Fluent Bit refuses to read a file twice)")
        return
    if len(ctx.seen) >= MAX_FILES:
        if not ctx.over_limit:  # Fluent Bit stops at the first file over the limit
            ctx.over_limit = True
            ctx.problem(at, Level.ERROR, "fb-include",
                        f"more than {MAX_FILES} config files (Fluent Bit's limit)")
        return
    if depth > MAX_INCLUDE_DEPTH:
        ctx.problem(at, Level.ERROR, "fb-include",
                    f"includes nested deeper than {MAX_INCLUDE_DEPTH} levels")
        return
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE + 1)
    except OSError as exc:
        ctx.problem(at, Level.ERROR, "fb-include" if where else "fb-syntax",
                    f"cannot read {path}: {exc.strerror or exc}")
        return
    if len(data) > MAX_FILE:
        ctx.problem(at, Level.ERROR, "fb-syntax", f"{path} is larger than {MAX_FILE} bytes")
        return
    if b"\0" in data:
        ctx.problem(Span(path=path, line=data[: data.index(b"\0")].count(b"\n") + 1, col=1),
                    Level.ERROR, "fb-syntax", "binary data (NUL byte): not a Fluent Bit config")
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        ctx.problem(Span(path=path, line=line, col=1), Level.WARNING, "fb-syntax",
                    "file is not valid UTF-8")
        text = data.decode("utf-8", errors="replace")
    if where is not None:
        ctx.root.includes.append(path)
    ctx.seen.add(real)
    ctx.stack.append(real)
    try:
        _parse(ctx, text, path, fmt, depth)
    finally:
        ctx.stack.pop()


def _parse(ctx: _Ctx, text: str, path: str, fmt: str, depth: int) -> None:
    if fmt == "yaml":
        _parse_yaml(ctx, text, path, depth)
    else:
        _parse_classic(ctx, text, path, depth)


def _include(ctx: _Ctx, pattern: str, including: str, fmt: str, where: Span,
             depth: int) -> None:
    """Resolve one include (glob or path) as Fluent Bit does, relative paths against the
    including file's directory first and then the main config's directory."""
    bases = [os.path.dirname(including), ctx.root_dir]
    if "*" in pattern:  # Fluent Bit globs only when the path has a '*' (then ?, [..] too)
        for base in bases:
            matches = sorted(glob.glob(os.path.join(base, pattern)))  # FB order: unspecified
            if matches:
                for match in matches:
                    if os.path.isfile(match):
                        _read_file(ctx, match, fmt, where, depth + 1)
                return
        ctx.problem(where, Level.ERROR, "fb-include", f"no file matches include {pattern!r}")
        return
    for base in bases:
        candidate = os.path.normpath(os.path.join(base, pattern))
        if os.path.exists(candidate):
            _read_file(ctx, candidate, fmt, where, depth + 1)
            return
    hint = " (the path ends in blanks, which Fluent Bit keeps)" if pattern != pattern.rstrip() \
        else ""
    ctx.problem(where, Level.ERROR, "fb-include",
                f"included file {pattern!r} does not exist{hint}")


# -- classic -----------------------------------------------------------------------------------

def _parse_classic(ctx: _Ctx, text: str, path: str, depth: int) -> None:
    """One classic file: Fluent Bit's ``read_config`` rules, errors kept going where sensible."""
    indent: str | None = None  # the first key line's indentation: rules this file
    section: Section | None = None
    group: Section | None = None
    for lineno, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        at = Span(path=path, line=lineno, col=1)
        if len(line) > MAX_LINE:
            ctx.problem(at, Level.ERROR, "fb-syntax", f"line longer than {MAX_LINE} bytes")
            return
        if not line or line[0] == "#":
            continue
        if line[0] == "@":
            _meta(ctx, line, path, at, depth)
            continue
        if line[0] == "[":
            end = line.find("]")
            if end <= 0:
                ctx.problem(at, Level.ERROR, "fb-syntax",
                            "bad header definition: missing ']'")
                section = None
                continue
            if section is not None and not section.entries and not section.children:
                ctx.problem(section.span or at, Level.WARNING, "fb-empty-section",
                            f"section [{section.header}] has no keys")
            name = line[1:end]
            section = Section(kind=section_kind(name), header=name, span=at)
            ctx.root.sections.append(section)
            group = None
            if line[end + 1:].strip():
                ctx.problem(Span(path=path, line=lineno, col=end + 2), Level.WARNING,
                            "fb-eol-comment", "text after ']' is ignored by Fluent Bit (no "
                            "end-of-line comments in classic configs)")
            continue
        if indent is None:
            n = len(line) - len(line.lstrip(" \t"))
            if n == len(line):  # a blank indented line sets the indent (Fluent Bit quirk)
                indent = line
                continue
            if n == 0:
                ctx.problem(at, Level.ERROR, "fb-indentation",
                            "a key must be indented (Fluent Bit mis-reads un-indented keys)")
                continue
            indent = line[:n]
        level, error = _indent_level(line, indent)
        if error:
            ctx.problem(at, Level.ERROR, "fb-indentation", f"invalid indentation level: {error}")
            continue
        if level == len(indent) and group is not None:
            group = None
        body = line[level:]
        if not body or body[0] == "#":
            continue
        sp = body.find(" ")
        if body[0] == "[":
            close = body.find("]")
            if close < 0 or section is None:
                ctx.problem(at, Level.ERROR, "fb-syntax",
                            "expected a valid group name: [..]" if close < 0
                            else "group outside a section")
                continue
            group = Section(kind="group", header=body[1:close],
                            span=Span(path=path, line=lineno, col=level + 1))
            section.children.append(group)
            continue
        if sp < 0:
            why = ("a tab separates key and value; Fluent Bit splits at the first space"
                   if "\t" in body.strip() else "key without a value")
            ctx.problem(at, Level.ERROR, "fb-syntax", f"undefined value: {why}")
            continue
        key, value = body[:sp], body[sp + 1:]
        if "\t" in key:
            ctx.problem(Span(path=path, line=lineno, col=level + 1), Level.ERROR, "fb-syntax",
                        f"key {key!r} contains a tab; Fluent Bit splits key and value at the "
                        "first space")
        stripped = value.strip()
        vcol = level + sp + 2 + (len(value) - len(value.lstrip()))
        if not stripped:
            ctx.problem(at, Level.ERROR, "fb-syntax", f"key {key.strip()!r} has an empty value")
            continue
        if section is None:
            ctx.problem(at, Level.ERROR, "fb-syntax", "key outside any [SECTION]")
            continue
        if " #" in stripped or "\t#" in stripped:
            ctx.problem(Span(path=path, line=lineno, col=vcol + stripped.find("#")),
                        Level.WARNING, "fb-eol-comment",
                        "'#' after a value is part of the value: classic configs have no "
                        "end-of-line comments")
        entry = Entry(key=key.strip(), value=stripped, raw=stripped,
                      span=Span(path=path, line=lineno, col=level + 1),
                      value_span=Span(path=path, line=lineno, col=vcol))
        (group or section).entries.append(entry)


def _indent_level(line: str, indent: str) -> tuple[int, str]:
    """Fluent Bit's ``check_indent``: ``(level, "")`` or ``(0, why)``."""
    i = 0
    while i < len(indent) and i < len(line) and line[i] == indent[i]:
        i += 1
    if i < len(indent):
        if i < len(line) and line[i] in " \t":
            return 0, "inconsistent use of tab and space"
        return 0, f"indentation is less than the file's first key line ({len(indent)})"
    extra = len(line) - len(line[i:].lstrip(" \t")) - i
    if extra == 0:
        return i, ""
    if extra == i:  # a group's key line: exactly twice the indentation
        return i + extra, ""
    return 0, "extra indentation level found"


def _meta(ctx: _Ctx, line: str, path: str, at: Span, depth: int) -> None:
    """``@INCLUDE path`` / ``@SET KEY=VALUE`` (the only meta Fluent Bit implements)."""
    if len(line) > 9 and line[:9].upper() == "@INCLUDE ":
        _include(ctx, line[9:], path, "classic", at, depth)
        return
    word, _, arg = line.partition(" ")
    if word.upper() == "@SET" and "=" in arg:
        name, _, value = arg.partition("=")
        ctx.root.variables[name] = value
        return
    if len(line) <= 3:
        ctx.problem(at, Level.ERROR, "fb-syntax", f"unknown line {line!r}")
        return
    ctx.problem(at, Level.ERROR, "fb-syntax",
                f"bad meta command {word!r}: only '@INCLUDE path' and '@SET KEY=VALUE' exist")


# -- YAML --------------------------------------------------------------------------------------

_YAML_SECTIONS = {"inputs": INPUT, "filters": FILTER, "outputs": OUTPUT}
_YAML_TOP = ("env", "includes", "service", "pipeline", "parsers", "multiline_parsers",
             "plugins", "upstream_servers", "customs", "stream_processor", "extensions")


def _parse_yaml(ctx: _Ctx, text: str, path: str, depth: int) -> None:
    data, problems = yamlpos.load(text, path, typed=False)
    ctx.root.problems.extend(problems)
    if data is None:
        return
    if not isinstance(data, yamlpos.YMap):
        ctx.problem(Span(path=path, line=1, col=1), Level.ERROR, "fb-syntax",
                    "a Fluent Bit YAML file is a mapping of sections (service, pipeline, ...)")
        return
    y = _Yaml(ctx, path)
    for key in data:
        span = y.span(data.key_mark(key))
        value = data[key]
        name = str(key)
        if name == "env":
            y.env(value, span)
        elif name == "includes":
            for item, mark in y.items(value, span, "includes"):
                if isinstance(item, str) and item.strip():
                    _include(ctx, item.strip(), path, "yaml", y.span(mark), depth)
                else:
                    y.err(y.span(mark), "an include is a file path")
        elif name == "service":
            if isinstance(value, yamlpos.YMap):
                y.section(SERVICE, "service", value, span, nested_ok=("telemetry",))
            elif value not in (None, ""):
                y.err(span, "'service' must be a mapping of keys")
        elif name == "pipeline":
            y.pipeline(value, span)
        elif name in ("parsers", "multiline_parsers", "customs", "stream_processor"):
            kind = {"parsers": PARSER, "multiline_parsers": MULTILINE_PARSER,
                    "customs": CUSTOM, "stream_processor": STREAM_TASK}[name]
            for item, mark in y.items(value, span, name):
                y.section(kind, name, item, y.span(mark), nested_ok=("rules",))
        elif name == "plugins":
            sect = Section(kind=PLUGINS, header="plugins", span=span)
            for item, mark in y.items(value, span, name):
                sect.entries.append(y.entry("path", item, y.span(mark), y.span(mark)))
            ctx.root.sections.append(sect)
        elif name == "upstream_servers":
            for item, mark in y.items(value, span, name):
                y.section(UPSTREAM, name, item, y.span(mark), nested_ok=("nodes",))
        elif name == "extensions":
            continue
        else:
            ctx.root.sections.append(Section(kind=OTHER, header=name, span=span))


class _Yaml:
    """Turns yamlpos data of one file into sections of ``ctx.root``."""

    def __init__(self, ctx: _Ctx, path: str) -> None:
        self.ctx = ctx
        self.path = path

    def span(self, mark: tuple[int, int]) -> Span:
        return Span(path=self.path, line=mark[0], col=mark[1])

    def err(self, span: Span, message: str) -> None:
        self.ctx.problem(span, Level.ERROR, "fb-syntax", message)

    def items(self, value: Any, span: Span, what: str) -> list[tuple[Any, tuple[int, int]]]:
        """Items of a YAML list with their marks; anything else is a problem."""
        if value is None or value == "":
            return []
        if not isinstance(value, yamlpos.YList):
            self.err(span, f"'{what}' must be a list")
            return []
        return [(item, value.item_mark(i)) for i, item in enumerate(value)]

    def env(self, value: Any, span: Span) -> None:
        if isinstance(value, yamlpos.YMap):
            for k, v in value.items():
                if isinstance(v, (yamlpos.YMap, yamlpos.YList)):
                    self.err(self.span(value.value_mark(k)), f"env {k!r} must be a scalar")
                else:
                    self.ctx.root.variables[str(k)] = "" if v is None else str(v)
            return
        for item, mark in self.items(value, span, "env"):
            if isinstance(item, yamlpos.YMap) and "name" in item:
                val = item.get("value")
                self.ctx.root.variables[str(item["name"])] = "" if val is None else str(val)
            else:
                self.err(self.span(mark), "an env item is a mapping with 'name' and 'value'")

    def pipeline(self, value: Any, span: Span) -> None:
        if value in (None, ""):
            return
        if not isinstance(value, yamlpos.YMap):
            self.err(span, "'pipeline' must be a mapping of inputs/filters/outputs")
            return
        for key, items in value.items():
            kspan = self.span(value.key_mark(key))
            kind = _YAML_SECTIONS.get(str(key))
            if kind is None:
                self.ctx.root.sections.append(Section(kind=OTHER, header=f"pipeline.{key}",
                                                      span=kspan))
                continue
            for item, mark in self.items(items, kspan, f"pipeline.{key}"):
                self.section(kind, str(key), item, self.span(mark), nested_ok=("processors",))

    def section(self, kind: str, header: str, item: Any, span: Span,
                nested_ok: tuple[str, ...] = ()) -> Section | None:
        if not isinstance(item, yamlpos.YMap):
            self.err(span, f"each item of '{header}' must be a mapping of properties")
            return None
        sect = Section(kind=kind, header=header, span=Span(path=self.path, line=item.mark[0],
                                                            col=item.mark[1]))
        self._fill(sect, item, nested_ok)
        if kind not in ("processor", "rule", NODE):
            self.ctx.root.sections.append(sect)
        return sect

    def _fill(self, sect: Section, item: yamlpos.YMap, nested_ok: tuple[str, ...]) -> None:
        for key, value in item.items():
            kspan = self.span(item.key_mark(key))
            vspan = self.span(item.value_mark(key))
            name = yaml_key(str(key))
            if name in nested_ok:
                self._nested(sect, name, value, kspan)
            elif isinstance(value, yamlpos.YList):
                for i, v in enumerate(value):
                    if isinstance(v, (yamlpos.YMap, yamlpos.YList)):
                        self.err(self.span(value.item_mark(i)),
                                 f"list items of {key!r} must be scalars")
                    else:
                        sect.entries.append(self.entry(name, v, kspan,
                                                       self.span(value.item_mark(i))))
            elif isinstance(value, yamlpos.YMap):
                self.err(kspan, f"{key!r}: nested values are only valid in 'extensions' "
                         "(and processors/rules/nodes)")
            else:
                sect.entries.append(self.entry(name, value, kspan, vspan))

    def _nested(self, sect: Section, name: str, value: Any, span: Span) -> None:
        if name == "processors":
            if not isinstance(value, yamlpos.YMap):
                self.err(span, "'processors' must map logs/metrics/traces to lists")
                return
            for signal, procs in value.items():
                for item, mark in self.items(procs, self.span(value.key_mark(signal)),
                                             f"processors.{signal}"):
                    child = self.section("processor", str(signal), item, self.span(mark))
                    if child is not None:
                        sect.children.append(child)
        elif name in ("rules", "nodes"):
            for item, mark in self.items(value, span, name):
                child = self.section("rule" if name == "rules" else NODE, name, item,
                                     self.span(mark))
                if child is not None:
                    sect.children.append(child)
        # service.telemetry (5.1): a nested block Fluent Bit reads itself; nothing to keep.

    @staticmethod
    def entry(key: str, value: Any, kspan: Span, vspan: Span) -> Entry:
        text = "" if value is None else str(value)
        return Entry(key=key, value=text, raw=text, span=kspan, value_span=vspan)


# -- variables ---------------------------------------------------------------------------------

def _expand_all(ctx: _Ctx) -> None:
    """Expand ``${VAR}`` / ``${VAR:-default}`` in every value, as Fluent Bit does when it
    applies a property (``flb_env_var_translate``): config variables first, then the process
    environment; an undefined variable becomes "" and is reported."""
    def walk(sections: list[Section]) -> None:
        for s in sections:
            for e in s.entries:
                _expand_entry(ctx, e)
            walk(s.children)

    walk(ctx.root.sections)


def _lookup(ctx: _Ctx, name: str) -> str | None:
    if name in ctx.root.variables:
        return ctx.root.variables[name]
    if name in ctx.env:
        return ctx.env[name]
    if name == "HOSTNAME":
        return socket.gethostname()
    return None


def _expand_entry(ctx: _Ctx, entry: Entry) -> None:
    if "${" not in entry.value:
        return
    missing: list[str] = []

    def sub(m: re.Match[str]) -> str:
        body = m.group(1)
        name, sep, default = body.partition(":-")
        value = _lookup(ctx, name)
        if sep and not value:  # ${VAR:-default}: used when unset or empty (FB >= 5.0.6)
            return default
        if value is None:
            missing.append(name)
            return ""
        return value

    entry.value = _VAR.sub(sub, entry.value).strip()
    if missing:
        entry.unresolved = tuple(missing)
        span = entry.value_span or entry.span or Span(path=ctx.root.path, line=1, col=1)
        for name in missing:
            ctx.problem(span, Level.WARNING, "fb-variable",
                        f"variable ${{{name}}} is used but not set (Fluent Bit substitutes "
                        "an empty string)")
