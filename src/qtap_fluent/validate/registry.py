"""The one registry of validator rules.

A rule is a small unit: an id, a default level, a one-line doc and a ``check`` function. Checks
receive the loaded deployment (``qtap_fluent.validate.deployment.Deployment``) and yield
``Problem``s. Modules that define rules call ``register`` at import time and are listed
explicitly in ``RULE_MODULES`` below: no import-time discovery.

Loaders also report problems (syntax errors...) under rule ids declared here with ``declare``
(no check function), so that ``--list-rules`` shows every id a user can see.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from qtap_fluent.fluentbit.config.checks import MODULES as FLUENTBIT_CHECKS
from qtap_fluent.problems import Level, Problem

Check = Callable[[Any], Iterator[Problem]]


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleInfo:
    id: str
    level: Level
    #: "fluentbit", "parsers", "lua", "qtap", "compose", "cross", "security", "yaml", "file"
    scope: str
    doc: str
    check: Check | None = None


RULES: dict[str, RuleInfo] = {}

#: Modules whose import registers rules. Order is the order checks run in.
RULE_MODULES: tuple[str, ...] = (
    "qtap_fluent.validate.declarations",
    # Fluent Bit per-file checks (their package docstring lists the ids).
    *FLUENTBIT_CHECKS,
    # Qtap YAML: ids the Qtap loader reports (declarations only).
    "qtap_fluent.qtap.rules",
    # validate's own: compose schema, cross-file and security rules.
    "qtap_fluent.validate.rules.compose_schema",
    "qtap_fluent.validate.rules.cross",
    "qtap_fluent.validate.rules.kubernetes",
    "qtap_fluent.validate.rules.security",
)


def register(rule_id: str, level: Level, scope: str, doc: str) -> Callable[[Check], Check]:
    """Decorator: register ``check`` as rule ``rule_id``."""

    def wrap(check: Check) -> Check:
        _add(RuleInfo(id=rule_id, level=level, scope=scope, doc=doc, check=check))
        return check

    return wrap


def declare(rule_id: str, level: Level, scope: str, doc: str) -> None:
    """Declare a rule id that a loader reports (no check function of its own)."""
    _add(RuleInfo(id=rule_id, level=level, scope=scope, doc=doc))


def _add(rule: RuleInfo) -> None:
    existing = RULES.get(rule.id)
    if existing is not None and existing.check is None and rule.check is None:
        # Two loaders may report the same id (``yaml-syntax``): the first declaration stands,
        # as long as they agree on how bad it is.
        if existing.level != rule.level:
            raise ValueError(f"rule id {rule.id!r} declared with two levels")
        return
    if rule.id in RULES and RULES[rule.id] != rule:
        existing = RULES[rule.id]
        if existing.check is not None or rule.check is None:
            raise ValueError(f"rule id {rule.id!r} registered twice")
    RULES[rule.id] = rule


def load_all() -> dict[str, RuleInfo]:
    """Import every rule module once; return the registry."""
    for name in RULE_MODULES:
        importlib.import_module(name)
    return RULES
