"""Load a Qtap YAML file into ``model.QtapConfig``, reporting every problem at once.

``load(text, path)`` never raises on bad input: it returns ``(config, problems)``, where
``config`` is None only when the text is not a YAML mapping at all. The conversion is driven by
the model's dataclass fields and their ``schema.spec`` metadata; checks that span several nodes
(stack references, rules, macros, filters, store ids) run afterwards in ``checks``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from qtap_fluent import yamlpos
from qtap_fluent.problems import Level, Problem
from qtap_fluent.qtap import model as M
from qtap_fluent.qtap import rules as R
from qtap_fluent.qtap import schema as S
from qtap_fluent.validate.registry import RULES

_BAD: Any = object()  #: "no usable value": the field keeps its default
_FIELDS: dict[type, list[tuple[str, Any, Mapping[str, Any]]]] = {}


def _fields(cls: type) -> list[tuple[str, Any, Mapping[str, Any]]]:
    """(name, type hint, schema metadata) of each YAML-facing field of a model class."""
    out = _FIELDS.get(cls)
    if out is None:
        hints = typing.get_type_hints(cls, vars(M))
        out = [(f.name, hints[f.name], f.metadata) for f in dataclasses.fields(cls)
               if "choices" in f.metadata]
        _FIELDS[cls] = out
    return out


def _suggest(word: str, options: typing.Iterable[str]) -> str:
    import difflib
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _span(mark: yamlpos.Mark) -> M.Span:
    return M.Span(mark[0], mark[1])


class Loader:
    """One load: holds the source lines and the problems found so far."""

    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self.problems: list[Problem] = []
        self._lines: list[str] | None = None
        self._special: dict[type, Callable[[Any, yamlpos.Mark, str, Mapping[str, Any]], Any]] = {
            M.EventStore: self._event_store, M.ObjectStore: self._object_store,
            M.Plugin: self._plugin, M.ValueSource: self._value_source,
        }

    @property
    def lines(self) -> list[str]:
        if self._lines is None:
            self._lines = self.text.splitlines()
        return self._lines

    def report(self, where: M.Span | yamlpos.Mark, rule: str, message: str,
               level: Level | None = None) -> None:
        line, col = (where.line, where.col) if isinstance(where, M.Span) else where
        self.problems.append(Problem(
            path=self.path, line=line, col=col, level=level or RULES[rule].level, rule=rule,
            message=message))

    # --- generic conversion ---------------------------------------------------------------

    def node(self, cls: type, data: Any, mark: yamlpos.Mark, where: str,
             **extra: Any) -> Any:
        """Build ``cls`` from a YAML mapping; unknown keys warned, bad fields reported."""
        if not isinstance(data, dict):
            self.report(mark, R.TYPE, f"{where}: expected a mapping, got "
                        f"{yamlpos.type_name(data)}")
            return _BAD
        fields = _fields(cls)
        names = {name for name, _, _ in fields}
        key_mark = getattr(data, "key_mark", lambda k: mark)
        value_mark = getattr(data, "value_mark", lambda k: mark)
        for key in data:
            if key not in names:
                self.report(key_mark(key), R.UNKNOWN_KEY,
                            f"unknown key {key!r} in {where or 'the top level'} (Qtap ignores "
                            f"it){_suggest(str(key), names)}")
        kwargs: dict[str, Any] = dict(extra)
        spans: dict[str, M.Span] = {}
        for name, hint, meta in fields:
            raw = data.get(name)
            sub = f"{where}.{name}" if where else name
            if name in data:
                spans[name] = _span(value_mark(name))
                if isinstance(raw, yamlpos.YList):
                    for i in range(len(raw)):
                        spans[f"{name}[{i}]"] = _span(raw.item_mark(i))
            if raw is None or raw == "":
                if meta["required"]:
                    at = key_mark(name) if name in data else mark
                    self.report(at, R.REQUIRED, f"{sub}: required field is missing"
                                + (" or empty" if name in data else ""))
                continue
            value = self.convert(raw, hint, value_mark(name), sub, meta)
            if value is not _BAD:
                kwargs[name] = value
        try:
            return cls(span=_span(mark), spans=spans, **kwargs)
        except TypeError as exc:  # a model/schema mismatch: a bug, but never a traceback
            self.report(mark, R.TYPE, f"{where}: cannot build {cls.__name__}: {exc}")
            return _BAD

    def convert(self, value: Any, hint: Any, mark: yamlpos.Mark, where: str,
                meta: Mapping[str, Any]) -> Any:
        origin = typing.get_origin(hint)
        if origin is types.UnionType or origin is typing.Union:
            options = [a for a in typing.get_args(hint) if a is not type(None)]
            hint = options[0] if len(options) == 1 else Any
            origin = typing.get_origin(hint)
        if hint is Any:
            return value
        if hint is str:
            return self._string(value, mark, where, meta)
        if hint is bool:
            if isinstance(value, bool):
                return value
            return self._type_error(mark, where, "true or false", value)
        if origin is tuple:
            return self._list(value, typing.get_args(hint)[0], mark, where, meta)
        if origin is Mapping:
            return self._mapping(value, typing.get_args(hint)[1], mark, where, meta)
        special = self._special.get(hint)
        if special is not None:
            return special(value, mark, where, meta)
        return self.node(hint, value, mark, where)

    def _type_error(self, mark: yamlpos.Mark, where: str, expected: str, value: Any) -> Any:
        self.report(mark, R.TYPE, f"{where}: expected {expected}, got "
                    f"{yamlpos.type_name(value)}")
        return _BAD

    def _string(self, value: Any, mark: yamlpos.Mark, where: str,
                meta: Mapping[str, Any]) -> Any:
        if isinstance(value, (dict, list)):
            return self._type_error(mark, where, "a string", value)
        if not isinstance(value, str):
            # yaml.v3 decodes any scalar into a string field as written (``level: off`` stays
            # "off"); PyYAML typed it, so take the text back from the source.
            value = self._source_text(mark) or str(value)
        if meta.get("lower"):
            value = value.lower()
        choices = meta.get("choices") or ()
        if not choices or value in choices:
            return value
        aliases = meta.get("aliases") or {}
        if value in aliases:
            if meta.get("alias_rule"):
                self.report(mark, meta["alias_rule"],
                            f"{where}: {value!r} is the legacy name of {aliases[value]!r}; "
                            f"Qtap reads it as {aliases[value]!r}")
            return aliases[value]
        fallback = meta.get("fallback") or ""
        hint = _suggest(value, choices)
        if value in S.CAPTURE_LEVEL_ALIASES and S.CAPTURE_LEVEL_ALIASES[value] in choices:
            hint = (f"; the legacy {value!r} is accepted only as the plugin's top-level level: "
                    f"write {S.CAPTURE_LEVEL_ALIASES[value]!r}")
        self.report(mark, R.ENUM,
                    f"{where}: unknown value {value!r}; expected one of "
                    f"{', '.join(choices)}{hint}"
                    + (f" ({fallback})" if fallback else ""),
                    Level.WARNING if fallback else None)
        return value if fallback else _BAD

    def _source_text(self, mark: yamlpos.Mark) -> str:
        """The plain scalar written at ``mark``. Only called for scalars YAML typed as
        number/bool/date, which never contain ``,]}`` — so those end it (flow context)."""
        line = self.lines[mark[0] - 1] if 0 < mark[0] <= len(self.lines) else ""
        text = line[mark[1] - 1:]
        for stop in (" #", ",", "]", "}"):
            cut = text.find(stop)
            if cut >= 0:
                text = text[:cut]
        return text.strip()

    def _list(self, value: Any, item_hint: Any, mark: yamlpos.Mark, where: str,
              meta: Mapping[str, Any]) -> Any:
        if not isinstance(value, list):
            return self._type_error(mark, where, "a list", value)
        item_mark = getattr(value, "item_mark", lambda i: mark)
        out = []
        for i, item in enumerate(value):
            if item is None:
                self.report(item_mark(i), R.TYPE, f"{where}[{i}]: empty list item")
                continue
            got = self.convert(item, item_hint, item_mark(i), f"{where}[{i}]", meta)
            if got is not _BAD:
                out.append(got)
        return tuple(out)

    def _mapping(self, value: Any, value_hint: Any, mark: yamlpos.Mark, where: str,
                 meta: Mapping[str, Any]) -> Any:
        if not isinstance(value, dict):
            return self._type_error(mark, where, "a mapping", value)
        value_mark = getattr(value, "value_mark", lambda k: mark)
        out: dict[str, Any] = {}
        for key, item in value.items():
            sub = f"{where}.{key}"
            if value_hint is M.Stack:
                got = self.node(M.Stack, item if item is not None else {}, value_mark(key), sub,
                                name=str(key))
            elif item is None:
                continue
            else:
                got = self.convert(item, value_hint, value_mark(key), sub, meta)
            if got is not _BAD:
                out[str(key)] = got
        return out

    # --- polymorphic and special nodes -----------------------------------------------------

    def _typed(self, data: Any, mark: yamlpos.Mark, where: str,
               classes: Mapping[str, type], base: type) -> Any:
        if not isinstance(data, dict):
            return self.node(base, data, mark, where)  # reports the type error
        kind = data.get("type")
        cls = classes.get(kind, base) if isinstance(kind, str) else base
        return self.node(cls, data, mark, where)

    def _event_store(self, data: Any, mark: yamlpos.Mark, where: str,
                     meta: Mapping[str, Any]) -> Any:
        return self._typed(data, mark, where, M.EVENT_STORE_CLASSES, M.EventStore)

    def _object_store(self, data: Any, mark: yamlpos.Mark, where: str,
                      meta: Mapping[str, Any]) -> Any:
        return self._typed(data, mark, where, M.OBJECT_STORE_CLASSES, M.ObjectStore)

    def _value_source(self, data: Any, mark: yamlpos.Mark, where: str,
                      meta: Mapping[str, Any]) -> Any:
        if not isinstance(data, dict):
            self.report(mark, R.TYPE, f"{where}: expected {{type: env|text, value: ...}}, got "
                        f"{yamlpos.type_name(data)} (Qtap does not expand ${{VARS}} in YAML)")
            return _BAD
        vs = self.node(M.ValueSource, data, mark, where)
        if vs is not _BAD and meta.get("secret") and vs.type == "text" and vs.value:
            self.report(vs.span_of("type"), R.SECRET_IN_CLEAR,
                        f"{where}: credential written in clear (type: text); use "
                        f"{{type: env, value: VARIABLE_NAME}}")
        return vs

    def _plugin(self, data: Any, mark: yamlpos.Mark, where: str,
                meta: Mapping[str, Any]) -> Any:
        plugin = self.node(M.Plugin, data, mark, where)
        if plugin is _BAD:
            return _BAD
        # ``config`` came through untyped (its type depends on ``type``): type it here.
        ptype, raw = plugin.type, data.get("config")
        plugin = dataclasses.replace(plugin, config=None)
        if ptype and ptype not in S.PLUGIN_TYPES:
            self.report(plugin.span_of("type"), R.UNKNOWN_PLUGIN,
                        f"{where}.type: unknown plugin type {ptype!r}; known: "
                        f"{', '.join(S.PLUGIN_TYPES)}{_suggest(ptype, S.PLUGIN_TYPES)}")
        if raw is None:
            return plugin
        cmark = data.value_mark("config") if isinstance(data, yamlpos.YMap) else mark
        cls = M.PLUGIN_CONFIG_CLASSES.get(ptype, dict)
        if cls is None:
            if raw != {}:
                self.report(cmark, R.UNKNOWN_KEY,
                            f"{where}.config: plugin {ptype!r} takes no config (Qtap ignores it)")
            return plugin
        if cls is dict:  # a plugin whose config this tool does not model: kept as plain data
            if not isinstance(raw, dict):
                self._type_error(cmark, f"{where}.config", "a mapping", raw)
                return plugin
            return dataclasses.replace(plugin, config=yamlpos.plain(raw))
        config = self.node(cls, raw, cmark, f"{where}.config")
        return plugin if config is _BAD else dataclasses.replace(plugin, config=config)


def load(text: str, path: str = "<qtap-config>") -> tuple[M.QtapConfig | None, list[Problem]]:
    """Parse and check a Qtap YAML text. Never raises on bad input."""
    from qtap_fluent.qtap.checks import check

    data, problems = yamlpos.load(text, path, typed=True)
    if data is None and not problems:
        problems.append(Problem(path=path, line=1, col=1, level=Level.ERROR,
                                rule=R.NOT_A_CONFIG, message="empty Qtap config"))
    if data is None:
        return None, problems
    loader = Loader(text, path)
    if not isinstance(data, dict):
        mark = getattr(data, "mark", (1, 1))
        loader.report(mark, R.NOT_A_CONFIG,
                      f"a Qtap config is a mapping, not {yamlpos.type_name(data)}")
        return None, problems + loader.problems
    config = loader.node(M.QtapConfig, data, getattr(data, "mark", (1, 1)), "", path=path)
    if config is _BAD:
        return None, problems + loader.problems
    check(config, loader)
    found = problems + loader.problems
    found.sort(key=Problem.sort_key)
    return config, found


def load_file(path: str | Path) -> tuple[M.QtapConfig | None, list[Problem]]:
    """Read and load a file; an unreadable file is one problem, not an exception."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return None, [Problem(path=name, line=1, col=1, level=Level.ERROR, rule=R.READ,
                              message=f"cannot read the Qtap config: {reason}")]
    return load(text, name)


def default_text() -> str:
    """The bundled default config's exact text (the guide's Step 1 ``qtap-config.yaml``)."""
    from importlib.resources import files

    return files("qtap_fluent").joinpath("assets", "qtap", "default.yaml").read_text("utf-8")


def load_default() -> M.QtapConfig:
    """The bundled default config, which loads without problems."""
    config, _ = load(default_text(), "<bundled qtap default>")
    assert config is not None
    return config
