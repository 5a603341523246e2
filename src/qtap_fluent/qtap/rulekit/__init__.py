"""Rulekit, the expression language of Qtap rules (``http.res.status >= 400``), in Python.

A faithful re-implementation of github.com/qpoint-io/rulekit (qtap.md §2): lexer, parser,
compiler to closures, evaluator, stdlib and qtap functions, config macros. Sans-I/O and fast::

    env = Environment({"is_ok": "http.res.status >= 200 && http.res.status < 300"})
    rule = env.compile('is_ok() and http.req.host == "api.example.com"')
    rule.matches({"http": {"res": {"status": 200}, "req": {"host": "api.example.com"}}})
    rule.evaluate({"http.res.status": 200})          # Result(outcome=ERROR, ...): host missing

Parse errors raise ``RuleSyntaxError`` (message + 0-based offset); evaluation never raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qtap_fluent.qtap.rulekit.ast import Node, calls
from qtap_fluent.qtap.rulekit.errors import EvalError, RuleSyntaxError
from qtap_fluent.qtap.rulekit.evaluate import (
    Compiler,
    Context,
    Fn,
    Outcome,
    Result,
    to_result,
)
from qtap_fluent.qtap.rulekit.functions import FUNCTIONS
from qtap_fluent.qtap.rulekit.parser import parse
from qtap_fluent.qtap.rulekit.values import is_zero

__all__ = [
    "FUNCTIONS", "CompiledRule", "Environment", "EvalError", "Outcome", "Result",
    "RuleSyntaxError", "compile_rule", "parse",
]


class CompiledRule:
    """A parsed and compiled expression; evaluate it as often as you like."""

    __slots__ = ("_fn", "source", "tree")

    def __init__(self, source: str, tree: Node, fn: Fn) -> None:
        self.source = source
        self.tree = tree
        self._fn = fn

    def evaluate(self, ctx: Context) -> Result:
        """Pass, fail or error (e.g. a missing field) for one context."""
        try:
            return to_result(self._fn(ctx))
        except RecursionError:  # macros nested into a very deep tree
            return to_result(EvalError(messages=("rule nested too deeply",)))

    def matches(self, ctx: Context) -> bool:
        """True only on pass: what qtap does with a rule (errors count as not matched)."""
        try:
            value = self._fn(ctx)
        except RecursionError:
            return False
        if value is True or value is False:  # what comparisons return: skip the general test
            return value
        return value.__class__ is not EvalError and not is_zero(value)

    def __repr__(self) -> str:
        return f"CompiledRule({self.source!r})"


class Environment:
    """Macros (zero-argument rules from the config's ``rulekit.macros``) plus the functions.

    Macro texts are parsed here: ``RuleSyntaxError`` names the macro in its message.
    """

    def __init__(self, macros: Mapping[str, str | Node] | None = None) -> None:
        trees: dict[str, Node] = {}
        for name, text in (macros or {}).items():
            if isinstance(text, str):
                try:
                    trees[name] = parse(text)
                except RuleSyntaxError as exc:
                    raise RuleSyntaxError(f"macro {name!r}: {exc.message}", exc.offset) from None
            elif isinstance(text, Node):
                trees[name] = text
            else:
                raise RuleSyntaxError(
                    f"macro {name!r}: expected an expression string, got {type(text).__name__}", 0)
        self._compiler = Compiler(trees)

    def compile(self, source: str | Node) -> CompiledRule:
        tree = parse(source) if isinstance(source, str) else source
        text = source if isinstance(source, str) else ""
        return CompiledRule(text, tree, self._compiler.compile(tree))

    def unknown_calls(self, tree: Node) -> list[tuple[str, int]]:
        """(message, offset) for each call that can only give an error result at run time:
        unknown names, wrong argument counts, macros given arguments."""
        out: list[tuple[str, int]] = []
        for call in calls(tree):
            fn = FUNCTIONS.get(call.name)
            if fn is not None:
                if fn.arity != len(call.args):
                    message = (f"function {call.name!r} expects {fn.arity} argument(s), "
                               f"got {len(call.args)}")
                    out.append((message, call.offset))
            elif call.name in self._compiler.macros:
                if call.args:
                    out.append((f"macro {call.name!r} takes no arguments", call.offset))
            else:
                out.append((f"unknown function or macro {call.name!r}", call.offset))
        return out


def compile_rule(source: str, macros: Mapping[str, str | Node] | None = None) -> CompiledRule:
    """Parse and compile one expression (``RuleSyntaxError`` if it does not parse)."""
    return Environment(macros).compile(source)


def evaluate(source: str, ctx: Context, macros: Mapping[str, str] | None = None) -> Any:
    """One-shot convenience for tests and the REPL; agents should compile once."""
    return compile_rule(source, macros).evaluate(ctx)
