"""What a Fluent Bit check receives, and the helpers every check module shares.

The interface (for ``qtap_fluent.validate.deployment.Deployment`` and anything else that runs
these checks) is :class:`FluentBitView`:

* ``fluentbit`` — the *main* Fluent Bit configs (the files ``fluent-bit -c`` would be given),
  loaded with :func:`qtap_fluent.fluentbit.config.load.load_file`, ``@INCLUDE``/``includes``
  already resolved (sections of included files are in the main file's ``sections``, their
  entries' spans name the included file);
* ``parsers`` — every parsers file of the deployment (loaded with ``load_file`` too; a file that
  is only a parsers file, not a main config);
* ``parsers_for(config)`` — the parsers files a main config references through ``Parsers_File``
  (and, for YAML, the config itself when it has a ``parsers:`` section);
* ``forward_tags`` — tags that records reaching a ``forward`` input without ``Tag`` carry, when
  another file says so (the docker compose ``logging.options.tag``; ``{{...}}`` template parts
  count as wildcards); empty when unknown, and then tag-routing checks give forward inputs the
  benefit of the doubt;
* ``host_path(config, path)`` — where a path written in ``config`` (``Parsers_File``, lua
  ``script``) is on this machine. Fluent Bit resolves relative paths against the main config's
  directory (:func:`default_host_path`); a deployment that knows the compose mounts can map a
  container path such as ``/fluent-bit/etc/parsers.conf`` back to the file next to the compose
  file.

:class:`SimpleView` is a ready implementation that resolves ``Parsers_File`` from disk the way
Fluent Bit does (relative to the main config's directory); a deployment may wrap or replace it.

A check is ``check(view: FluentBitView) -> Iterator[Problem]`` registered with
``qtap_fluent.validate.registry.register(rule_id, level, scope, doc)``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from qtap_fluent.fluentbit.config.model import PARSER, ConfigFile, Entry, Section, Span
from qtap_fluent.problems import Level, Problem


class FluentBitView(Protocol):
    """The part of a deployment that Fluent Bit checks read."""

    @property
    def fluentbit(self) -> Sequence[ConfigFile]: ...

    @property
    def parsers(self) -> Sequence[ConfigFile]: ...

    @property
    def forward_tags(self) -> Sequence[str]: ...

    def parsers_for(self, config: ConfigFile) -> Sequence[ConfigFile]: ...

    def host_path(self, config: ConfigFile, path: str) -> str: ...


def default_host_path(config: ConfigFile, path: str) -> str:
    """``path`` as written in ``config``, made absolute the way Fluent Bit finds it.

    Fluent Bit tries the path as given (CWD) and then relative to the main config's directory; a
    validator runs from anywhere, so relative paths are resolved against the config's directory.
    """
    base = os.path.dirname(os.path.abspath(config.path))
    return os.path.normpath(os.path.join(base, path))


def parsers_file_paths(view: FluentBitView | None,
                       config: ConfigFile) -> list[tuple[Entry, str]]:
    """``(entry, path on this machine)`` of each ``Parsers_File`` of ``config``."""
    out: list[tuple[Entry, str]] = []
    for entry in config.service().get_all("parsers_file"):
        value = entry.value.strip()
        if value:
            path = (view.host_path(config, value) if view is not None
                    else default_host_path(config, value))
            out.append((entry, path))
    return out


@dataclass(slots=True)
class SimpleView:
    """A :class:`FluentBitView` over main configs; parsers files are loaded from disk on demand."""

    fluentbit: list[ConfigFile]
    parsers: list[ConfigFile] = field(default_factory=list)
    forward_tags: list[str] = field(default_factory=list)
    _cache: dict[str, ConfigFile] = field(default_factory=dict)

    def parsers_for(self, config: ConfigFile) -> list[ConfigFile]:
        from qtap_fluent.fluentbit.config.load import load_file

        out: list[ConfigFile] = []
        if any(True for _ in config.of(PARSER)):
            out.append(config)
        known = {os.path.abspath(p.path): p for p in self.parsers}
        for _entry, path in parsers_file_paths(self, config):
            if path in known:
                out.append(known[path])
            elif os.path.isfile(path):
                if path not in self._cache:
                    self._cache[path] = load_file(path)
                out.append(self._cache[path])
        return out

    def host_path(self, config: ConfigFile, path: str) -> str:
        return default_host_path(config, path)


def problem(span: Span | None, fallback: str, level: Level, rule: str, message: str) -> Problem:
    """A Problem at ``span`` (or line 1 of ``fallback`` when the span is unknown)."""
    if span is None:
        return Problem(path=fallback, line=1, col=1, level=level, rule=rule, message=message)
    return Problem(path=span.path, line=span.line, col=span.col, level=level, rule=rule,
                   message=message)


def at_entry(entry: Entry, config: ConfigFile, level: Level, rule: str, message: str,
             *, value: bool = False) -> Problem:
    """A Problem at an entry's key (or value when ``value``)."""
    span = (entry.value_span or entry.span) if value else entry.span
    return problem(span, config.path, level, rule, message)


def at_section(section: Section, config: ConfigFile, level: Level, rule: str,
               message: str) -> Problem:
    return problem(section.span, config.path, level, rule, message)


def label(section: Section) -> str:
    """How a message names a section: ``[OUTPUT] s3`` / ``outputs: s3``."""
    name = section.plugin or "?"
    return f"{section.kind} '{name}'"


def onig_error(pattern: str) -> str | None:
    """Why ``pattern`` does not compile in Oniguruma (the Onigmo family Fluent Bit uses), or
    None. Imported lazily: validate should start fast."""
    import onigurumacffi

    try:
        onigurumacffi.compile(pattern)
    except onigurumacffi.OnigError as exc:
        return str(exc)
    except (ValueError, UnicodeError) as exc:  # e.g. a NUL byte in the pattern
        return str(exc)
    return None


def split_tokens(value: str) -> list[str]:
    """Fluent Bit's ``flb_slist_split_tokens``: whitespace-separated tokens, double quotes group
    a token (``\\"`` escapes a quote). Used for rewrite_tag rules and record_modifier records."""
    tokens: list[str] = []
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i] in " \t":
            i += 1
        if i >= n:
            break
        if value[i] == '"':
            i += 1
            buf: list[str] = []
            while i < n and value[i] != '"':
                if value[i] == "\\" and i + 1 < n and value[i + 1] == '"':
                    i += 1
                buf.append(value[i])
                i += 1
            i += 1
            tokens.append("".join(buf))
        else:
            start = i
            while i < n and value[i] not in " \t":
                i += 1
            tokens.append(value[start:i])
    return tokens
