"""Tell what a file is from its content (and, as a hint, its name). Pure: text in, kind out.

A deployment folder mixes Qtap YAML, Fluent Bit configs in two formats, parsers files, Lua
scripts and compose files, and names are only conventions (``qtap.yaml`` may be called
anything). So the kind comes from what the file says: its top-level YAML keys or its classic
section headers. The name decides only where the content is ambiguous (``.lua``; a compose
file that no longer parses).
"""

from __future__ import annotations

import os
import re

QTAP = "qtap"
FB_CLASSIC = "fluentbit-classic"
FB_YAML = "fluentbit-yaml"
PARSERS_CLASSIC = "parsers-classic"
PARSERS_YAML = "parsers-yaml"
FB_AUX = "fluentbit-aux"  #: plugins, upstream and stream files: loaded by reference only
LUA = "lua"
COMPOSE = "compose"
K8S = "k8s"
SERVE = "serve"  #: ``qtap-fluent serve`` config (listen, filters, outputs)
ENV = "env"  #: compose ``.env`` files: read for secrets only
UNKNOWN = "unknown"

KINDS = (QTAP, FB_CLASSIC, FB_YAML, PARSERS_CLASSIC, PARSERS_YAML, FB_AUX, LUA, COMPOSE, K8S,
         SERVE, ENV, UNKNOWN)
_SERVE_KEYS = frozenset({"listen", "metrics_listen", "spool", "flush_interval", "filters",
                         "outputs", "retry_backoff"})

YAML_EXTS = (".yaml", ".yml")
#: Names that hold code or prose, never a config these tools read, whatever they quote.
NOT_CONFIG_EXTS = (".py", ".pyi", ".md", ".rst", ".txt", ".json", ".toml", ".sh", ".c", ".h",
                   ".go", ".rs", ".js", ".ts", ".html", ".css", ".csv", ".ipynb", ".lock",
                   ".cfg", ".ini", ".j2", ".tmpl", ".xml", ".sarif")
#: Classic section names Fluent Bit knows (``get_section_type``; fluentbit.md §2.1, §2.6).
CLASSIC_SECTIONS = frozenset({
    "service", "input", "inputs", "filter", "filters", "output", "outputs", "parser",
    "multiline_parser", "custom", "customs", "plugins", "upstream", "node", "stream_task",
    "stream_processor", "upstream_servers"})
#: Names docker compose looks for (compose-spec "Compose file": compose.yaml preferred).
COMPOSE_NAME = re.compile(r"^(docker-)?compose(\.[\w.-]+)?\.ya?ml$", re.IGNORECASE)

# Top-level YAML keys: a key at column 0 (block style). Good enough to classify, also for a
# truncated file that no longer parses; the real parse happens in the loader.
_TOP_KEY = re.compile(r"^([A-Za-z_][\w.-]*)[ \t]*:(?:[ \t]|$)", re.MULTILINE)
# Classic Fluent Bit: ``[NAME]`` or ``@INCLUDE``/``@SET`` at column 0 (fluentbit.md §2.1).
_CLASSIC_HEADER = re.compile(r"^\[([^\]\n]*)\]", re.MULTILINE)
_CLASSIC_META = re.compile(r"^@(include|set)\s", re.IGNORECASE | re.MULTILINE)
_CLASSIC_FIRST = re.compile(r"^(?:\[[^\]\n]*\]|@(?:include|set)\s)", re.IGNORECASE)

_FB_YAML_KEYS = {"service", "pipeline", "includes", "env", "customs", "plugins",
                 "upstream_servers", "stream_processor", "extensions"}
_FB_YAML_PARSER_KEYS = {"parsers", "multiline_parsers"}
_QTAP_KEYS = {"tap", "stacks", "control", "rulekit"}
_QTAP_SERVICE_KEYS = ("event_stores", "object_stores", "qscan")
_COMPOSE_KEYS = {"services", "volumes", "networks", "configs", "secrets", "version", "name",
                 "include"}
_PARSER_SECTIONS = {"parser", "multiline_parser"}
_AUX_SECTIONS = {"plugins", "upstream", "node", "stream_task"}


def top_keys(text: str) -> list[str]:
    """The block-style keys written at column 0, in order."""
    return _TOP_KEY.findall(text)


def _services_block(text: str) -> str:
    """The lines of the top-level ``services:`` block (best effort, for classification)."""
    m = re.search(r"^services[ \t]*:[^\n]*\n", text, re.MULTILINE)
    if m is None:
        return ""
    end = re.search(r"^\S", text[m.end():], re.MULTILINE)
    return text[m.end(): m.end() + end.start()] if end else text[m.end():]


def classify_yaml(name: str, text: str) -> str:
    """Kind of a YAML document from its top-level keys."""
    keys = set(top_keys(text))
    if {"apiVersion", "kind"} <= keys:
        return K8S
    if keys & _QTAP_KEYS:
        return QTAP
    if "services" in keys:
        block = _services_block(text)
        if any(re.search(rf"^\s+{k}\s*:", block, re.MULTILINE) for k in _QTAP_SERVICE_KEYS):
            return QTAP
        return COMPOSE
    if keys & {"outputs", "filters"} and keys <= _SERVE_KEYS:
        return SERVE
    if keys & _FB_YAML_KEYS:
        return FB_YAML
    if keys and keys <= _FB_YAML_PARSER_KEYS:
        return PARSERS_YAML
    if COMPOSE_NAME.match(os.path.basename(name)):
        return COMPOSE
    return UNKNOWN


def _first_line(text: str) -> str:
    """The first line that is neither blank nor a ``#`` comment (column 0 comments only)."""
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            return line
    return ""


def classify_classic(text: str) -> str:
    """Kind of a classic (INI-like) Fluent Bit file from its section headers.

    The first significant line must be a header or a meta command, and at least one header must
    be a section Fluent Bit knows: that keeps Markdown links, TOML and INI files out while a
    config with one misspelled section still counts (and gets ``fb-unknown-section``).
    """
    if not _CLASSIC_FIRST.match(_first_line(text)):
        return UNKNOWN
    names = [n.strip().lower() for n in _CLASSIC_HEADER.findall(text)]
    if not names:
        return FB_CLASSIC if _CLASSIC_META.search(text) else UNKNOWN
    if not CLASSIC_SECTIONS & set(names):
        return UNKNOWN
    kinds = set(names)
    if kinds <= _PARSER_SECTIONS:
        return PARSERS_CLASSIC
    if kinds <= _AUX_SECTIONS:
        return FB_AUX
    return FB_CLASSIC


def classify(name: str, text: str) -> str:
    """Kind of file ``name`` holding ``text``: one of ``KINDS``."""
    lower = name.lower()
    if lower.endswith(".lua"):
        return LUA
    base = os.path.basename(lower)
    if base == ".env" or base.endswith(".env"):
        return ENV  # compose interpolation variables (compose-spec "Interpolation")
    if lower.endswith(NOT_CONFIG_EXTS):
        return UNKNOWN
    if lower.endswith(YAML_EXTS):
        return classify_yaml(name, text)
    kind = classify_classic(text)
    if kind != UNKNOWN:
        return kind
    # A YAML document under another name (``qtap.conf``, no extension): content decides.
    kind = classify_yaml(name, text)
    return kind if kind in (QTAP, FB_YAML, COMPOSE) else UNKNOWN
