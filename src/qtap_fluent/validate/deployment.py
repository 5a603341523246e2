"""A deployment: the files ``validate`` was given, classified, loaded, and held for the rules.

``discover`` walks the paths (files or folders), ``classify`` (content first) says what each file
is, and the right loader reads it: Fluent Bit configs with ``fluentbit.config.load``, Qtap YAML
with ``qtap.config.load``, compose files with ``yamlpos`` (typed, as docker compose reads them).
Loader problems are kept in ``problems``; rules read the loaded pieces. A file that cannot be read
(binary, too large, not UTF-8) is a problem when named on the command line and skipped silently
inside a folder, like every other file of unknown kind.

The Fluent Bit part implements ``fluentbit.config.checks.base.FluentBitView``: ``fluentbit`` (main
configs, includes resolved), ``parsers``, ``parsers_for(config)`` and ``forward_tags`` (the tags
compose's fluentd log driver gives records).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from qtap_fluent import yamlpos
from qtap_fluent.fluentbit.config.model import ConfigFile
from qtap_fluent.problems import Level, Problem
from qtap_fluent.validate import classify as kinds
from qtap_fluent.validate.kubernetes import Manifests

#: Files larger than this are not read (a config this big is a mistake, or not a config).
MAX_FILE_BYTES = 8 * 1024 * 1024
#: Folder walks stop descending below this depth and after this many files.
MAX_DEPTH = 6
MAX_FILES = 5000
#: Directory names never walked into.
SKIP_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", "venv",
                       ".tox", ".mypy_cache", ".ruff_cache", ".pytest_cache"})
#: Extensions that can never be a config: skipped without reading.
SKIP_EXTS = (".pyc", ".png", ".jpg", ".jpeg", ".gif", ".gz", ".zip", ".tar", ".so", ".o",
             ".whl", ".pdf", ".ico")


@dataclass(slots=True, kw_only=True)
class SourceFile:
    """One file of the deployment with its kind and text."""

    path: str  #: as shown in problems: the path given, joined with the file's place in a folder
    kind: str  #: one of ``classify.KINDS``
    text: str
    explicit: bool = False  #: named on the command line (not found in a folder)
    env: dict[str, str] | None = None  #: variables the file sees (ConfigMap: the pod's env)


@dataclass(slots=True, kw_only=True)
class YamlDoc:
    """A YAML file read with positions: compose files, Qtap configs."""

    source: SourceFile
    data: Any  #: a ``yamlpos.YMap`` when the document is a mapping, else None

    @property
    def path(self) -> str:
        return self.source.path


@dataclass(slots=True, kw_only=True)
class QtapDoc(YamlDoc):
    """A Qtap YAML file: the raw document and the model ``qtap.config.load`` built (or None)."""

    config: Any = None


@dataclass(slots=True, kw_only=True)
class Deployment:
    """Everything ``validate`` loaded; rules read it, nothing here prints."""

    files: list[SourceFile] = field(default_factory=list)
    fluentbit: list[ConfigFile] = field(default_factory=list)
    parsers: list[ConfigFile] = field(default_factory=list)
    qtap: list[QtapDoc] = field(default_factory=list)
    compose: list[YamlDoc] = field(default_factory=list)
    lua: list[SourceFile] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    forward_tags: list[str] = field(default_factory=list)
    manifests: Manifests = field(default_factory=Manifests)
    _parsers_by_path: dict[str, ConfigFile] = field(default_factory=dict)

    def parsers_for(self, config: ConfigFile) -> list[ConfigFile]:
        """Parsers files ``config`` uses (``Parsers_File``; YAML ``parsers:`` in itself)."""
        from qtap_fluent.fluentbit.config.checks.base import parsers_file_paths
        from qtap_fluent.fluentbit.config.model import PARSER

        out: list[ConfigFile] = []
        if any(True for _ in config.of(PARSER)):
            out.append(config)
        for _entry, path in parsers_file_paths(self, config):
            loaded = self._load_parsers(path)
            if loaded is not None:
                out.append(loaded)
        return out

    def host_path(self, config: ConfigFile, path: str) -> str:
        """Where ``path`` written in ``config`` is on this machine.

        When a compose fluent-bit service runs ``config`` (mounted at its ``-c`` path), the path
        is resolved inside that container and mapped back through the service's bind mounts
        (``/fluent-bit/etc/parsers.conf`` -> ``./parsers.conf``); otherwise it is relative to
        the config's folder, as Fluent Bit resolves it.
        """
        from qtap_fluent.fluentbit.config.checks.base import default_host_path
        from qtap_fluent.validate import compose

        me = os.path.abspath(config.path)
        for service in compose.all_services(self.compose):
            if not service.is_fluentbit:
                continue
            # The config's place in the container: its ``-c`` path, or wherever it is mounted
            # (a config mounted but not started is resolved the same way when ``-c`` changes).
            started, _, _ = compose.config_path(service)
            targets = [started] if _abs_eq(service.target_source(started), me) else []
            targets += [m.target for m in service.mounts if _abs_eq(m.source, me)]
            for container_config in targets:
                inside = path if os.path.isabs(path) else os.path.join(
                    os.path.dirname(container_config), path)
                mapped = service.target_source(inside)
                if mapped is not None:
                    return mapped
        return default_host_path(config, path)

    def _load_parsers(self, path: str) -> ConfigFile | None:
        key = os.path.abspath(path)
        if key not in self._parsers_by_path:
            if not os.path.isfile(key):
                return None
            from qtap_fluent.fluentbit.config.load import load_file

            try:
                self._parsers_by_path[key] = load_file(path)
            except Exception as exc:  # noqa: BLE001 - reported, never a traceback
                self.problems.append(_crash(path, "the Fluent Bit parsers loader", exc))
                return None
        return self._parsers_by_path[key]

    def source(self, path: str) -> SourceFile | None:
        """The loaded file at ``path`` (any spelling of the same file), if any."""
        key = os.path.abspath(path)
        for f in self.files:
            if os.path.abspath(f.path) == key:
                return f
        return None

    def all_configs(self) -> Iterator[ConfigFile]:
        """Main Fluent Bit configs, then parsers files."""
        yield from self.fluentbit
        yield from self.parsers


def _abs_eq(a: str | None, b: str) -> bool:
    return a is not None and os.path.abspath(a) == b


def _problem(path: str, rule: str, message: str, level: Level = Level.ERROR,
             line: int = 1, col: int = 1) -> Problem:
    return Problem(path=path, line=line, col=col, level=level, rule=rule, message=message)


def _walk(root: str) -> Iterator[str]:
    """Files under ``root``, sorted, bounded in depth; hidden and junk folders skipped, and
    files whose name says they are code, prose or binary."""
    base_depth = root.rstrip(os.sep).count(os.sep)
    skip = SKIP_EXTS + kinds.NOT_CONFIG_EXTS
    for dirpath, dirnames, filenames in os.walk(root):
        depth = dirpath.rstrip(os.sep).count(os.sep) - base_depth
        dirnames[:] = sorted(d for d in dirnames
                             if d not in SKIP_DIRS and not d.startswith(".") and depth < MAX_DEPTH)
        for name in sorted(filenames):
            if not name.lower().endswith(skip):
                yield os.path.normpath(os.path.join(dirpath, name))


def discover(paths: Sequence[str]) -> tuple[list[tuple[str, bool]], list[Problem]]:
    """``(path, explicit)`` for every candidate file under ``paths``, at most ``MAX_FILES``.

    A path that does not exist is not a problem but a usage error: the caller checks first.
    """
    out: list[tuple[str, bool]] = []
    seen: set[str] = set()
    for given in paths:
        found: Iterator[str] = _walk(given) if os.path.isdir(given) else iter([given])
        explicit = not os.path.isdir(given)
        for path in found:
            key = os.path.realpath(path)
            if key in seen:
                continue
            seen.add(key)
            if len(out) >= MAX_FILES:
                return out, [_problem(given, "file-unreadable",
                                      f"more than {MAX_FILES} files; the rest were skipped",
                                      Level.WARNING)]
            out.append((os.path.normpath(path), explicit))
    return out, []


def read_text(path: str) -> tuple[str | None, str | None]:
    """``(text, None)`` or ``(None, why not)``. Never raises for a bad file."""
    try:
        if not os.path.isfile(path):
            return None, "not a regular file"  # a FIFO or device would block or never end
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            return None, f"file is {size} bytes, more than the {MAX_FILE_BYTES} a config may have"
        with open(path, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return None, f"cannot read file: {exc.strerror or exc}"
    if b"\0" in raw[:8192]:
        return None, "binary file (contains NUL bytes), not a configuration"
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text (byte {exc.start}: {raw[exc.start]:#04x})"
    return text, None


def load(paths: Sequence[str]) -> Deployment:
    """Discover, classify and load every file under ``paths``. Never raises on bad content."""
    deployment = Deployment()
    found, deployment.problems = discover(paths)
    fb_candidates: list[SourceFile] = []
    parser_candidates: list[SourceFile] = []
    for path, explicit in found:
        source = _read(path, explicit, deployment.problems)
        if source is None:
            continue
        deployment.files.append(source)
        kind = source.kind
        if kind in (kinds.FB_CLASSIC, kinds.FB_YAML):
            fb_candidates.append(source)
        elif kind in (kinds.PARSERS_CLASSIC, kinds.PARSERS_YAML):
            parser_candidates.append(source)
        elif kind == kinds.LUA:
            deployment.lua.append(source)
        elif kind == kinds.COMPOSE:
            deployment.compose.append(_load_yaml(source, deployment.problems))
        elif kind == kinds.QTAP:
            deployment.qtap.append(_load_qtap(source, deployment.problems))
        elif kind == kinds.K8S:
            deployment.manifests.add(source.path, source.text, deployment.problems)
        elif kind == kinds.SERVE:
            from qtap_fluent.serve.config import check as check_serve

            deployment.problems.extend(check_serve(source.text, source.path))
    # Files carried by ConfigMaps are checked like files on disk (mapped back afterwards).
    texts = {f.path: f.text for f in deployment.files if f.kind == kinds.K8S}
    for temp, text, env in deployment.manifests.materialise(texts):
        kind = kinds.classify(temp, text)
        embedded = SourceFile(path=temp, kind=kind, text=text, env=env)
        if kind in (kinds.FB_CLASSIC, kinds.FB_YAML):
            fb_candidates.append(embedded)
        elif kind in (kinds.PARSERS_CLASSIC, kinds.PARSERS_YAML):
            parser_candidates.append(embedded)
        elif kind == kinds.LUA:
            deployment.lua.append(embedded)
        elif kind == kinds.QTAP:
            deployment.qtap.append(_load_qtap(embedded, deployment.problems))
    _load_fluentbit(deployment, fb_candidates, parser_candidates)
    for given in paths:
        if os.path.isdir(given) and not any(_under(f.path, given) for f in deployment.files):
            deployment.problems.append(_problem(
                given, "file-none-found", "no Qtap, Fluent Bit, Lua or compose file in this "
                "folder: nothing was checked", Level.WARNING))
    from qtap_fluent.validate import compose

    deployment.forward_tags = compose.forward_tags(deployment.compose)
    return deployment


def _under(path: str, folder: str) -> bool:
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(folder))
    return rel != ".." and not rel.startswith(".." + os.sep)


def _read(path: str, explicit: bool, problems: list[Problem]) -> SourceFile | None:
    """Read and classify one file; None (and maybe a problem) when it is not for us."""
    text, why = read_text(path)
    if text is None:
        if explicit or path.lower().endswith((".conf", ".yaml", ".yml", ".lua")):
            problems.append(_problem(path, "file-unreadable", why or "unreadable"))
        return None
    kind = kinds.classify(path, text)
    if kind == kinds.UNKNOWN:
        if explicit:
            problems.append(_problem(
                path, "file-unknown-kind",
                "not a file validate knows: expected Qtap YAML, a Fluent Bit config "
                "(classic or YAML), a parsers file, a Lua script or a docker compose file"))
        return None
    if kind == kinds.FB_AUX and explicit:
        problems.append(_problem(path, "file-not-checked",
                                 f"recognised as {kind}, which validate does not check yet",
                                 Level.INFO))
    return SourceFile(path=path, kind=kind, text=text, explicit=explicit)


def _crash(path: str, what: str, exc: Exception) -> Problem:
    return _problem(path, "validator-crash", f"{what} failed: {type(exc).__name__}: {exc}")


def _load_yaml(source: SourceFile, problems: list[Problem]) -> YamlDoc:
    data, found = yamlpos.load(source.text, source.path, typed=True)
    problems.extend(found)
    if data is not None and not isinstance(data, yamlpos.YMap):
        problems.append(_problem(source.path, "yaml-syntax",
                                 f"the document is a {yamlpos.type_name(data)}, expected a mapping"))
        data = None
    return YamlDoc(source=source, data=data)


def _load_qtap(source: SourceFile, problems: list[Problem]) -> QtapDoc:
    # The raw document (positions) serves the security rules; B's model the Qtap rules.
    raw, syntax = yamlpos.load(source.text, source.path, typed=True)
    data = raw if isinstance(raw, yamlpos.YMap) else None
    try:
        from qtap_fluent.qtap.config import load as load_qtap
    except ModuleNotFoundError as exc:
        if exc.name != "qtap_fluent.qtap.config":
            raise
        # Without the Qtap model (a partial install) the raw document still serves the
        # cross-file and security rules; report YAML problems ourselves.
        problems.extend(syntax)
        return QtapDoc(source=source, data=data, config=None)
    try:
        config, found = load_qtap(source.text, source.path)
    except Exception as exc:  # noqa: BLE001 - a loader bug is reported, never a traceback
        problems.append(_crash(source.path, "the Qtap loader", exc))
        return QtapDoc(source=source, data=data, config=None)
    problems.extend(found)
    return QtapDoc(source=source, data=data, config=config)


def _load_fluentbit(deployment: Deployment, candidates: list[SourceFile],
                    parser_candidates: list[SourceFile]) -> None:
    """Load main configs (files no other candidate includes) and parsers files."""
    from qtap_fluent.fluentbit.config.load import YAML_EXTENSIONS, load_text

    loaded: dict[str, ConfigFile] = {}
    for s in candidates:
        # Fluent Bit picks the format by extension (flb_cf_create_from_file), so do we.
        fmt = "yaml" if s.path.lower().endswith(YAML_EXTENSIONS) else "classic"
        try:
            loaded[s.path] = load_text(s.text, s.path, fmt, env=s.env)
        except Exception as exc:  # noqa: BLE001 - a loader bug is reported, never a traceback
            deployment.problems.append(_crash(s.path, "the Fluent Bit loader", exc))
    included = {os.path.abspath(p) for cfg in loaded.values() for p in cfg.includes}
    mains = [cfg for path, cfg in loaded.items() if os.path.abspath(path) not in included]
    covered = {os.path.abspath(p) for cfg in mains for p in [cfg.path, *cfg.includes]}
    # Files that include each other in a cycle: nobody is "the" main one; the first (by
    # name) of each cycle stands for it.
    for path, cfg in loaded.items():
        if os.path.abspath(path) not in covered:
            mains.append(cfg)
            covered.update(os.path.abspath(p) for p in [cfg.path, *cfg.includes])
    deployment.fluentbit = mains
    for cfg in mains:
        deployment.problems.extend(cfg.problems)
    for source in parser_candidates:
        parsers = deployment._load_parsers(source.path)
        if parsers is not None:
            deployment.parsers.append(parsers)
            deployment.problems.extend(parsers.problems)
    # Parsers files referenced from outside the folder are loaded too, reported once.
    known = {os.path.abspath(p.path) for p in deployment.parsers}
    for cfg in mains:
        for extra in deployment.parsers_for(cfg):
            if extra is not cfg and os.path.abspath(extra.path) not in known:
                known.add(os.path.abspath(extra.path))
                deployment.parsers.append(extra)
                deployment.problems.extend(extra.problems)
