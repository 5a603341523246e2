"""Compile a rulekit tree into nested closures and evaluate it against a context (qtap.md §2.2).

Parse once, evaluate per transaction: every node becomes one Python closure taking the context
mapping and returning either a plain value or an ``EvalError``. No tree walking at run time;
field lookups split their dotted key once, at compile time; comparisons against literals get
specialised closures (``fastpath``).

Semantics kept from upstream:

* a missing field is an error, not false; ``and``/``or`` propagate errors the upstream way
  (``a or b`` passes when ``a`` passes even if ``b`` is missing; ``a and b`` with ``b`` missing is
  an error unless ``a`` is false);
* ``not`` is REAL negation here. Upstream's ``nodeNot.Eval`` (rulekit HEAD, since commit
  6be0c74, May 2025) returns ``!isZero(value)`` — the operand's own truthiness — so ``not x``
  does not negate there. We deliberately do not copy that bug.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from qtap_fluent.qtap.rulekit import values as V
from qtap_fluent.qtap.rulekit.ast import (
    And,
    Array,
    Call,
    Compare,
    Field,
    In,
    Literal,
    Match,
    Node,
    Not,
    Or,
)
from qtap_fluent.qtap.rulekit.errors import EvalError
from qtap_fluent.qtap.rulekit.fastpath import numeric_fast_path, string_fast_path
from qtap_fluent.qtap.rulekit.functions import FUNCTIONS, ArgError

Context = Mapping[str, Any]


Fn = Callable[[Context], Any]


class Outcome(enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one evaluation: pass (no error, non-zero value), fail, or error."""

    outcome: Outcome
    value: Any = None
    error: EvalError | None = None

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASS

    @property
    def failed(self) -> bool:
        return self.outcome is Outcome.FAIL

    @property
    def errored(self) -> bool:
        return self.outcome is Outcome.ERROR


_MISSING = object()


def _lookup(name: str) -> Fn:
    """Upstream ``IndexKV``: try the rest of the dotted key flat, else descend one segment.

    The (segment, rest-of-key) pairs are computed once here, not per lookup."""
    missing = EvalError(frozenset((name,)))
    if "." not in name:
        def flat(ctx: Context) -> Any:
            value = ctx.get(name, _MISSING)
            return missing if value is _MISSING else value
        return flat
    parts = name.split(".")
    steps = tuple((parts[i], ".".join(parts[i + 1:])) for i in range(len(parts) - 1))

    def walk(ctx: Context) -> Any:
        value = ctx.get(name, _MISSING)
        if value is not _MISSING:
            return value
        current: Any = ctx
        for segment, rest in steps:
            current = current.get(segment, _MISSING)
            if current.__class__ is not dict and not isinstance(current, Mapping):
                return missing  # also when _MISSING
            value = current.get(rest, _MISSING)
            if value is not _MISSING:
                return value
        return missing
    return walk


class Compiler:
    """Turns trees into closures; macros are compiled on first use and shared."""

    def __init__(self, macros: Mapping[str, Node] | None = None) -> None:
        self.macros: dict[str, Node] = dict(macros or {})
        self._compiled: dict[str, Fn] = {}
        self._compiling: set[str] = set()

    def compile(self, node: Node) -> Fn:
        if isinstance(node, Literal):
            value = node.value
            return lambda ctx: value
        if isinstance(node, Field):
            return _lookup(node.name)
        if isinstance(node, Array):
            return self._array(node)
        if isinstance(node, Compare):
            return self._compare(node)
        if isinstance(node, Match):
            return self._compare(Compare(node.left, V.EQ, node.pattern, node.offset))
        if isinstance(node, In):
            return self._in(node)
        if isinstance(node, Not):
            return self._not(node)
        if isinstance(node, And):
            return self._and(node)
        if isinstance(node, Or):
            return self._or(node)
        return self._call(node)

    def _array(self, node: Array) -> Fn:
        if all(isinstance(item, Literal) for item in node.items):
            const = [item.value for item in node.items]  # type: ignore[union-attr]
            return lambda ctx: const
        items = [self.compile(item) for item in node.items]

        def array(ctx: Context) -> Any:
            out = []
            for item in items:
                v = item(ctx)
                if v.__class__ is EvalError:
                    return v
                out.append(v)
            return out
        return array

    def _compare(self, node: Compare) -> Fn:
        left = self.compile(node.left)
        op = node.op
        compare = V.compare
        if isinstance(node.right, Literal):
            lit = node.right.value
            if lit.__class__ in (int, float) and op in (V.GT, V.GE, V.LT, V.LE, V.EQ, V.NE):
                return numeric_fast_path(left, op, lit)
            if lit.__class__ is str and op in (V.EQ, V.NE, V.CONTAINS):
                return string_fast_path(left, op, lit)

            def compare_literal(ctx: Context) -> Any:
                lv = left(ctx)
                if lv.__class__ is EvalError:
                    return lv
                return compare(lv, op, lit)
            return compare_literal
        right = self.compile(node.right)

        def compare_values(ctx: Context) -> Any:
            lv = left(ctx)
            if lv.__class__ is EvalError:
                return lv
            rv = right(ctx)
            if rv.__class__ is EvalError:
                return rv
            return compare(lv, op, rv)
        return compare_values

    def _in(self, node: In) -> Fn:
        left = self.compile(node.left)
        array = self.compile(node.array)
        each = V.compare_each
        compare = V.compare

        def in_array(ctx: Context) -> Any:
            lv = left(ctx)
            if lv.__class__ is EvalError:
                return lv
            items = array(ctx)
            if items.__class__ is EvalError:
                return items
            # ``x in ARR`` is ``ARR contains x``: one element equals x.
            return each(items, V.EQ, lambda item, o: compare(item, o, lv))
        return in_array

    def _not(self, node: Not) -> Fn:
        operand = self.compile(node.operand)
        is_zero = V.is_zero

        def negate(ctx: Context) -> Any:
            v = operand(ctx)
            if v.__class__ is EvalError:
                return v
            return is_zero(v)  # real negation (see the module docstring for upstream's bug)
        return negate

    def _and(self, node: And) -> Fn:
        left, right = self.compile(node.left), self.compile(node.right)
        is_zero = V.is_zero

        def both(ctx: Context) -> Any:
            lv = left(ctx)
            if lv is False:
                return False  # a false side decides, whatever the other side is
            l_err = lv.__class__ is EvalError
            if not l_err and lv is not True and is_zero(lv):
                return lv
            rv = right(ctx)
            if rv is True:
                return lv if l_err else True
            r_err = rv.__class__ is EvalError
            if not r_err and is_zero(rv):
                return rv
            if l_err and r_err:
                return lv.merge(rv)
            if l_err or r_err:
                return lv if l_err else rv
            return True
        return both

    def _or(self, node: Or) -> Fn:
        left, right = self.compile(node.left), self.compile(node.right)
        is_zero = V.is_zero

        def either(ctx: Context) -> Any:
            lv = left(ctx)
            if lv is True:
                return True  # a passing side decides, even if the other is missing
            l_err = lv.__class__ is EvalError
            if not l_err and lv is not False and not is_zero(lv):
                return lv
            rv = right(ctx)
            r_err = rv.__class__ is EvalError
            if not r_err and rv is not False and not is_zero(rv):
                return rv
            if l_err and r_err:
                return lv.merge(rv)
            if l_err or r_err:
                return lv if l_err else rv
            return False
        return either

    def _call(self, node: Call) -> Fn:
        fn = FUNCTIONS.get(node.name)
        if fn is not None:
            if fn.arity != len(node.args):
                return _error(f"function {node.name!r} expects {fn.arity} arguments, "
                              f"got {len(node.args)}")
            args = [self.compile(a) for a in node.args]
            impl = fn.impl

            def call(ctx: Context) -> Any:
                values = []
                for arg in args:
                    v = arg(ctx)
                    if v.__class__ is EvalError:
                        return v
                    values.append(v)
                out = impl(*values)
                return EvalError(messages=(out.message,)) if isinstance(out, ArgError) else out
            return call
        if node.name in self.macros:
            if node.args:
                return _error(f"macro {node.name!r} expects 0 arguments, got {len(node.args)}")
            return self._macro(node.name)
        return _error(f"unknown function {node.name!r}")

    def _macro(self, name: str) -> Fn:
        done = self._compiled.get(name)
        if done is not None:
            return done
        if name in self._compiling:
            # Upstream would recurse until the stack overflows; we make it an error result.
            return _error(f"macro {name!r} refers to itself")
        self._compiling.add(name)
        try:
            fn = self.compile(self.macros[name])
        finally:
            self._compiling.discard(name)
        self._compiled[name] = fn
        return fn


def _error(message: str) -> Fn:
    err = EvalError(messages=(message,))
    return lambda ctx: err


def to_result(value: Any) -> Result:
    if value.__class__ is EvalError:
        return Result(Outcome.ERROR, None, value)
    return Result(Outcome.FAIL if V.is_zero(value) else Outcome.PASS, value)
