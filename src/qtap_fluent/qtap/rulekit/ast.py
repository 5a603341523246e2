"""The rulekit syntax tree: frozen nodes, each with the 0-based offset it started at."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any
    raw: str
    offset: int


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    offset: int


@dataclass(frozen=True, slots=True)
class Array:
    items: tuple[Node, ...]
    offset: int


@dataclass(frozen=True, slots=True)
class Call:
    """``name(arg, …)``: a stdlib or qtap function, or a zero-argument macro."""

    name: str
    args: tuple[Node, ...]
    offset: int


@dataclass(frozen=True, slots=True)
class Compare:
    left: Node
    op: str  #: one of ``qtap_fluent.qtap.rulekit.values`` EQ NE GT GE LT LE CONTAINS
    right: Node
    offset: int


@dataclass(frozen=True, slots=True)
class Match:
    """``x matches /re/`` (or ``=~``)."""

    left: Node
    pattern: Literal
    offset: int


@dataclass(frozen=True, slots=True)
class In:
    """``x in [a, b]``: passes when one element equals ``x``."""

    left: Node
    array: Array
    offset: int


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node
    offset: int


@dataclass(frozen=True, slots=True)
class And:
    left: Node
    right: Node
    offset: int


@dataclass(frozen=True, slots=True)
class Or:
    left: Node
    right: Node
    offset: int


Node = Literal | Field | Array | Call | Compare | Match | In | Not | And | Or


def calls(node: Node) -> list[Call]:
    """Every function call / macro use in ``node``, in source order."""
    out: list[Call] = []
    stack: list[Node] = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Call):
            out.append(n)
            stack.extend(reversed(n.args))
        elif isinstance(n, Array):
            stack.extend(reversed(n.items))
        elif isinstance(n, (Compare, And, Or)):
            stack.extend((n.right, n.left))
        elif isinstance(n, (Match, In)):
            stack.append(n.left)
        elif isinstance(n, Not):
            stack.append(n.operand)
    out.sort(key=lambda c: c.offset)
    return out
