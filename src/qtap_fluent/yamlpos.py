"""YAML with positions: plain dicts/lists that remember where each key and value was written.

PyYAML's composer gives nodes with marks; we turn them into ``YMap``/``YList`` (dict and list
subclasses) carrying 1-based ``(line, col)`` marks, so loaders can report ``file:line:col``.
Scalars are either typed the YAML 1.1 way (``typed=True``, what Qtap's yaml.v3 mostly agrees with)
or kept as the exact source text (``typed=False``, what Fluent Bit's libyaml-based loader sees).
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from qtap_fluent.problems import Level, Problem

Mark = tuple[int, int]

#: Nesting deeper than this is refused rather than recursed into (hostile input).
MAX_DEPTH = 200


class YMap(dict):  # type: ignore[type-arg]
    """A mapping that knows where it, each key and each value started."""

    __slots__ = ("key_marks", "mark", "value_marks")

    def __init__(self, mark: Mark) -> None:
        super().__init__()
        self.mark = mark
        self.key_marks: dict[Any, Mark] = {}
        self.value_marks: dict[Any, Mark] = {}

    def key_mark(self, key: Any) -> Mark:
        return self.key_marks.get(key, self.mark)

    def value_mark(self, key: Any) -> Mark:
        return self.value_marks.get(key, self.key_mark(key))


class YList(list):  # type: ignore[type-arg]
    """A sequence that knows where it and each item started."""

    __slots__ = ("item_marks", "mark")

    def __init__(self, mark: Mark) -> None:
        super().__init__()
        self.mark = mark
        self.item_marks: list[Mark] = []

    def item_mark(self, index: int) -> Mark:
        if 0 <= index < len(self.item_marks):
            return self.item_marks[index]
        return self.mark


def mark_of(node: Node) -> Mark:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self, path: str, typed: bool) -> None:
        self.path = path
        self.typed = typed
        self.problems: list[Problem] = []
        self._constructor = SafeConstructor()

    def problem(self, mark: Mark, rule: str, message: str, level: Level = Level.ERROR) -> None:
        self.problems.append(
            Problem(path=self.path, line=mark[0], col=mark[1], level=level, rule=rule,
                    message=message)
        )

    def scalar(self, node: ScalarNode) -> Any:
        if not self.typed:
            return node.value
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self.problem(mark_of(node), "yaml-syntax", f"bad scalar: {exc}")
            return node.value

    def build(self, node: Node, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            self.problem(mark_of(node), "yaml-syntax", f"nesting deeper than {MAX_DEPTH} levels")
            return None
        if isinstance(node, ScalarNode):
            return self.scalar(node)
        if isinstance(node, SequenceNode):
            seq = YList(mark_of(node))
            for item in node.value:
                seq.item_marks.append(mark_of(item))
                seq.append(self.build(item, depth + 1))
            return seq
        if isinstance(node, MappingNode):
            self._flatten_merge(node)
            mapping = YMap(mark_of(node))
            for knode, vnode in node.value:
                key = self.build(knode, depth + 1)
                if isinstance(key, (YMap, YList)):
                    self.problem(mark_of(knode), "yaml-syntax", "a mapping key must be a scalar")
                    continue
                if key in mapping:
                    self.problem(mark_of(knode), "yaml-duplicate-key",
                                 f"duplicate key {key!r} (first at line "
                                 f"{mapping.key_marks[key][0]}); the last one wins")
                mapping.key_marks[key] = mark_of(knode)
                mapping.value_marks[key] = mark_of(vnode)
                mapping[key] = self.build(vnode, depth + 1)
            return mapping
        self.problem(mark_of(node), "yaml-syntax", "unsupported YAML node")
        return None

    def _flatten_merge(self, node: MappingNode) -> None:
        # ``<<: *anchor`` merge keys: let PyYAML's own logic splice them in.
        try:
            self._constructor.flatten_mapping(node)
        except yaml.YAMLError as exc:
            self.problem(mark_of(node), "yaml-syntax", f"bad merge key: {exc}")


def load(text: str, path: str, *, typed: bool = True) -> tuple[Any, list[Problem]]:
    """Parse one YAML document; return ``(data, problems)``.

    ``data`` is None for an empty document or a syntax error (which is then in ``problems``).
    Never raises on bad input.
    """
    builder = _Builder(path, typed)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        msg = " ".join(str(x) for x in (exc.context, exc.problem) if x) or str(exc)
        builder.problem((line, col), "yaml-syntax", f"YAML syntax error: {msg}")
        return None, builder.problems
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        builder.problem((1, 1), "yaml-syntax", f"YAML syntax error: {exc}")
        return None, builder.problems
    if node is None:
        return None, builder.problems
    try:
        data = builder.build(node)
    except RecursionError:
        builder.problem(mark_of(node), "yaml-syntax", "YAML nested too deeply")
        return None, builder.problems
    return data, builder.problems


def load_all(text: str, path: str, *, typed: bool = True) -> tuple[list[Any], list[Problem]]:
    """Every document of a multi-document stream (``---``); like ``load`` otherwise."""
    builder = _Builder(path, typed)
    docs: list[Any] = []
    try:
        for node in yaml.compose_all(text, Loader=yaml.SafeLoader):
            if node is not None:
                docs.append(builder.build(node))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        msg = " ".join(str(x) for x in (exc.context, exc.problem) if x) or str(exc)
        builder.problem((line, col), "yaml-syntax", f"YAML syntax error: {msg}")
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        builder.problem((1, 1), "yaml-syntax", f"YAML syntax error: {exc}")
    return docs, builder.problems


def plain(value: Any) -> Any:
    """YMap/YList -> dict/list, recursively (positions dropped), e.g. for JSON Schema."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def type_name(value: Any) -> str:
    """How a YAML user would name the type of ``value`` in a message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__
