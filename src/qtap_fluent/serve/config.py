"""``serve.yaml``: a forward listener plus filters and outputs routed by tag.

Example::

    listen: 0.0.0.0:24224          # forward server (Fluent Bit's forward output points here)
    metrics_listen: 127.0.0.1:2021 # Prometheus text at /metrics (optional)
    spool: /var/lib/qtap-fluent/serve
    flush_interval: 1s             # how often outputs get time-driven work (S3 rotation)
    filters:
      - name: redact               # a built-in (serve.filters.FILTERS) ...
        match: "qtap.*"
      - plugin: mycorp.qtap:enrich_service   # ... or a dotted path / entry point
        match_regex: "^qtap\\."
        catalogue: /etc/services.json        # every other key goes to the plugin
    outputs:
      - name: s3
        match: "*"
        bucket: captures
        region: eu-west-1
        total_file_size: 50M
        upload_timeout: 5m
        compression: gzip

Section keys are case-insensitive like Fluent Bit's (``Name``, ``Match``, ``Match_Regex``).
``load_config`` returns problems with line and column; ``build_pipeline`` turns a config into
live plugins, reporting factory failures at the section that caused them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qtap_fluent import yamlpos
from qtap_fluent.errors import QtapFluentError
from qtap_fluent.problems import Level, Problem
from qtap_fluent.serve.filters import FILTERS
from qtap_fluent.serve.match import TagMatcher
from qtap_fluent.serve.pipeline import FilterStage, OutputStage, Pipeline
from qtap_fluent.serve.plugins import PluginError, build
from qtap_fluent.sinks.base import SinkError
from qtap_fluent.sinks.options import parse_time
from qtap_fluent.sinks.registry import SINKS, SinkContext, build_sink

DEFAULT_LISTEN = ("0.0.0.0", 24224)
DEFAULT_SPOOL = "/var/lib/qtap-fluent/serve"
#: Keys every section understands; everything else is an option of the plugin.
SECTION_KEYS = frozenset({"name", "plugin", "match", "match_regex", "alias", "on_error",
                          "retry_limit"})
TOP_KEYS = frozenset({"listen", "metrics_listen", "spool", "flush_interval", "filters",
                      "outputs", "retry_backoff"})


@dataclass(slots=True)
class Section:
    """One filter or output as written: what it is, where, and its options."""

    kind: str  #: "filter" or "output"
    ref: str  #: built-in name or plugin reference
    builtin: bool
    match: str | None
    match_regex: str | None
    alias: str
    on_error: str
    retry_limit: int
    options: dict[str, Any]
    line: int = 1
    col: int = 1


@dataclass(slots=True)
class ServeConfig:
    listen: tuple[str, int] = DEFAULT_LISTEN
    metrics_listen: tuple[str, int] | None = None
    spool: Path = Path(DEFAULT_SPOOL)
    flush_interval: float = 1.0
    retry_backoff: float = 0.2
    filters: list[Section] = field(default_factory=list)
    outputs: list[Section] = field(default_factory=list)
    path: str = "<flags>"


def parse_address(text: str, default_port: int | None = None) -> tuple[str, int]:
    """``HOST:PORT``, ``[v6]:PORT``, ``:PORT`` or ``PORT``; ValueError with the reason."""
    text = text.strip()
    m = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:\[\]]*):(\d+)|(\d+)", text)
    if not m:
        if default_port is not None and text and ":" not in text:
            return text, default_port
        raise ValueError(f"{text!r} is not HOST:PORT")
    host = m.group(1) or m.group(3) or ""
    port = int(m.group(2) or m.group(4) or m.group(5))
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range")
    return host or "0.0.0.0", port


class _Reader:
    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def problem(self, mark: tuple[int, int], rule: str, message: str,
                level: Level = Level.ERROR) -> None:
        self.problems.append(Problem(path=self.path, line=mark[0], col=mark[1], level=level,
                                     rule=rule, message=message))

    def section(self, kind: str, raw: Any, mark: tuple[int, int]) -> Section | None:
        if not isinstance(raw, dict):
            self.problem(mark, "serve-section", f"each {kind} must be a mapping")
            return None
        lower = {str(k).lower(): k for k in raw}

        def get(k: str) -> Any:
            return raw.get(lower[k]) if k in lower else None

        where = raw.mark if isinstance(raw, yamlpos.YMap) else mark
        name, plugin = get("name"), get("plugin")
        if (name is None) == (plugin is None):
            self.problem(where, "serve-section", f"a {kind} needs exactly one of 'name' "
                         "(a built-in) or 'plugin' (module:factory or entry point)")
            return None
        registry = FILTERS if kind == "filter" else SINKS
        if name is not None and str(name).lower() not in registry:
            self.problem(raw.value_mark(lower["name"]) if isinstance(raw, yamlpos.YMap)
                         else where, "serve-unknown-plugin",
                         f"unknown {kind} {name!r}; built-ins: {', '.join(sorted(registry))}")
            return None
        match, regex = get("match"), get("match_regex")
        if regex is not None:
            try:
                re.compile(str(regex))
            except re.error as exc:
                self.problem(where, "serve-match-regex", f"bad Match_Regex {regex!r}: {exc}")
                return None
        if match is None and regex is None:
            self.problem(where, "serve-no-match", f"{kind} has no 'match' or 'match_regex': "
                         "it will receive nothing (as in Fluent Bit)", Level.WARNING)
        ref = str(name if name is not None else plugin)
        on_error = str(get("on_error") or ("drop" if ref == "redact" else "pass")).lower()
        if on_error not in ("pass", "drop"):
            self.problem(where, "serve-section", "on_error must be 'pass' or 'drop'")
            return None
        retry = get("retry_limit")
        if retry is not None and (not isinstance(retry, int) or isinstance(retry, bool)
                                  or retry < 0):
            self.problem(where, "serve-section", "retry_limit must be an integer >= 0")
            return None
        options = {str(k): v for k, v in raw.items() if str(k).lower() not in SECTION_KEYS}
        return Section(kind=kind, ref=ref.lower() if name is not None else ref,
                       builtin=name is not None, match=None if match is None else str(match),
                       match_regex=None if regex is None else str(regex),
                       alias=str(get("alias") or ref), on_error=on_error,
                       retry_limit=3 if retry is None else retry, options=options,
                       line=where[0], col=where[1])


def load_config(text: str, path: str) -> tuple[ServeConfig | None, list[Problem]]:
    """Parse ``serve.yaml``; never raises on bad input."""
    data, problems = yamlpos.load(text, path, typed=True)
    r = _Reader(path)
    r.problems.extend(problems)
    if data is None:
        if not problems:
            r.problem((1, 1), "serve-empty", "the file is empty")
        return None, r.problems
    if not isinstance(data, yamlpos.YMap):
        r.problem((1, 1), "serve-top", "the top level must be a mapping")
        return None, r.problems
    cfg = ServeConfig(path=path)
    for key in data:
        if key not in TOP_KEYS:
            r.problem(data.key_mark(key), "serve-unknown-key", f"unknown key {key!r}; known: "
                      f"{', '.join(sorted(TOP_KEYS))}")
    for key, default_port in (("listen", 24224), ("metrics_listen", 2021)):
        if key in data:
            try:
                addr = parse_address(str(data[key]), default_port)
            except ValueError as exc:
                r.problem(data.value_mark(key), "serve-address", f"{key}: {exc}")
                continue
            if key == "listen":
                cfg.listen = addr
            else:
                cfg.metrics_listen = addr
    if "spool" in data:
        cfg.spool = Path(str(data["spool"]))
    for key in ("flush_interval", "retry_backoff"):
        if key in data:
            try:
                setattr(cfg, key, parse_time(data[key]))
            except ValueError as exc:
                r.problem(data.value_mark(key), "serve-time", f"{key}: {exc}")
    for key, kind in (("filters", "filter"), ("outputs", "output")):
        items = data.get(key)
        if items is None:
            continue
        if not isinstance(items, yamlpos.YList):
            r.problem(data.value_mark(key), "serve-section", f"'{key}' must be a list")
            continue
        for i, raw in enumerate(items):
            section = r.section(kind, raw, items.item_mark(i))
            if section is not None:
                (cfg.filters if kind == "filter" else cfg.outputs).append(section)
    if any(p.level is Level.ERROR for p in r.problems):
        return None, r.problems
    return cfg, r.problems


def build_pipeline(cfg: ServeConfig, *,
                   dry_run: bool = False) -> tuple[Pipeline | None, list[Problem]]:
    """Instantiate every plugin; problems name the section of the one that failed.

    ``dry_run`` builds no AWS clients (the sinks are only for checking options).
    """
    problems: list[Problem] = []
    filters: list[FilterStage] = []
    outputs: list[OutputStage] = []
    ctx = SinkContext(spool_dir=cfg.spool, dry_run=dry_run)
    names: dict[str, int] = {}
    for section in cfg.filters + cfg.outputs:
        n = names.get(section.alias, 0)
        names[section.alias] = n + 1
        label = f"{section.alias}.{n}"
        matcher = TagMatcher(section.match, section.match_regex)
        try:
            if section.kind == "filter":
                fn = (FILTERS[section.ref](section.options) if section.builtin
                      else build(section.ref, section.options))
                if not callable(fn):
                    raise PluginError(f"plugin {section.ref!r} did not return a callable")
                filters.append(FilterStage(label, matcher, fn, section.on_error))
            else:
                sink = (build_sink(section.ref, section.options, ctx) if section.builtin
                        else build(section.ref, section.options))
                for method in ("open", "write", "flush", "close"):
                    if not callable(getattr(sink, method, None)):
                        raise PluginError(f"output plugin {section.ref!r} has no {method}()")
                outputs.append(OutputStage(label, matcher, sink, section.retry_limit))
        except (PluginError, SinkError, QtapFluentError) as exc:
            problems.append(Problem(path=cfg.path, line=section.line, col=section.col,
                                    level=Level.ERROR, rule="serve-plugin", message=str(exc)))
    if problems:
        return None, problems
    if not outputs:
        problems.append(Problem(path=cfg.path, line=1, col=1, level=Level.ERROR,
                                rule="serve-no-output", message="no outputs configured"))
        return None, problems
    return Pipeline(filters, outputs, retry_backoff=cfg.retry_backoff), problems


def check(text: str, path: str) -> list[Problem]:
    """Every problem of a ``serve.yaml`` without starting anything (for ``validate``).

    Builds the plugins (which checks their options and that plugin references resolve) but
    opens none: no socket, no spool directory, no AWS call.
    """
    cfg, problems = load_config(text, path)
    if cfg is None:
        return problems
    _pipeline, more = build_pipeline(cfg, dry_run=True)
    return problems + more
