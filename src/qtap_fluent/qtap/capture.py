"""What http_capture does with one transaction: the level and format Qtap would record it at.

Qtap's rules (pkg/plugins/httpcapture): the stack is the endpoint override for the domain, else
``tap.http``; its http_capture rules run in order and the first that PASSES sets level and
format (a rule's format defaults to the plugin's); a rule that does not parse is skipped, and
one whose evaluation errors (a missing field) counts as not matching. Otherwise the plugin's
own level and format apply. Everything is compiled once here; ``decide`` is per transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qtap_fluent.qtap.model import HttpCaptureConfig, QtapConfig
from qtap_fluent.qtap.rulekit import CompiledRule, Environment, RuleSyntaxError, parse
from qtap_fluent.qtap.rulekit.ast import Node


@dataclass(frozen=True, slots=True)
class Decision:
    level: str  #: none | summary | headers | full
    format: str  #: json | text
    rule: str | None = None  #: the name of the rule that decided, if one did

    @property
    def captured(self) -> bool:
        return self.level != "none"


NOTHING = Decision("none", "json")


@dataclass(frozen=True, slots=True)
class _Compiled:
    default: Decision
    rules: tuple[tuple[CompiledRule, Decision], ...]


class CapturePolicy:
    """The compiled http_capture behaviour of a whole config."""

    def __init__(self, config: QtapConfig) -> None:
        self._config = config
        self._env = Environment(_parseable_macros(config.macros))
        self._by_stack: dict[str, _Compiled] = {}
        for name, stack in config.stacks.items():
            capture = stack.http_capture
            if capture is not None:
                self._by_stack[name] = self._compile(capture)

    def _compile(self, capture: HttpCaptureConfig) -> _Compiled:
        rules = []
        for rule in capture.rules:
            try:
                compiled = self._env.compile(rule.expr)
            except RuleSyntaxError:
                continue  # Qtap logs and skips a rule that does not parse
            rules.append((compiled, Decision(rule.level, rule.format or capture.format,
                                             rule.name or rule.expr)))
        return _Compiled(Decision(capture.level, capture.format), tuple(rules))

    def decide(self, ctx: Mapping[str, Any], domain: str | None = None) -> Decision:
        """The level/format for one transaction with rule context ``ctx``."""
        stack = self._config.http_stack_for(domain)
        compiled = self._by_stack.get(stack.name) if stack is not None else None
        if compiled is None:
            return NOTHING
        for rule, decision in compiled.rules:
            if rule.matches(ctx):
                return decision
        return compiled.default


def _parseable_macros(macros: Mapping[str, str]) -> dict[str, Node]:
    out: dict[str, Node] = {}
    for name, expr in macros.items():
        try:
            out[name] = parse(expr)
        except RuleSyntaxError:
            continue
    return out
