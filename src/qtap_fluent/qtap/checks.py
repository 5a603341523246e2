"""Checks that look across the loaded config: stack references, rule expressions, macros,
filters, endpoint domains and store ids. Each appends problems to the loader; none raises."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from qtap_fluent.problems import Level
from qtap_fluent.qtap import model as M
from qtap_fluent.qtap import rules as R
from qtap_fluent.qtap import schema as S
from qtap_fluent.qtap.positions import locate

if TYPE_CHECKING:
    from qtap_fluent.qtap.config import Loader
    from qtap_fluent.qtap.rulekit import Environment
    from qtap_fluent.qtap.rulekit.ast import Node as RuleNode

#: go-playground/validator ``hostname`` (RFC 952), which Qtap applies to endpoint domains.
_HOSTNAME = re.compile(r"^[a-zA-Z]([a-zA-Z0-9\-]+[\.]?)*[a-zA-Z0-9]$")
_PROTOCOLS = ("http", "redis", "mysql", "kafka", "postgres")


def check(config: M.QtapConfig, loader: Loader) -> None:
    """Run every cross-node check on ``config``."""
    _stack_refs(config, loader)
    if config.tap is not None:
        _filters(config.tap.filters, loader)
        _domains(config.tap, loader)
    _store_ids(config, loader)
    expressions = list(_expressions(config))
    if expressions or (config.rulekit is not None and config.rulekit.macros):
        env = _macros(config, loader)  # imports the rulekit parser only when there is a rule
        for where, rule in expressions:
            _expression(rule, where, env, loader)


def _stack_refs(config: M.QtapConfig, loader: Loader) -> None:
    tap = config.tap
    if tap is None:
        return
    defined = ", ".join(sorted(config.stacks)) or "none"
    places: list[tuple[str, M.ProtocolStack]] = [
        (f"tap.{p}", getattr(tap, p)) for p in _PROTOCOLS]
    for i, ep in enumerate(tap.endpoints):
        places += [(f"tap.endpoints[{i}].{p}", getattr(ep, p)) for p in _PROTOCOLS]
    for where, ref in places:
        if ref.has_stack and ref.stack not in config.stacks:
            loader.report(ref.span_of("stack"), R.UNDEFINED_STACK,
                          f"{where}.stack: stack {ref.stack!r} is not defined in `stacks` "
                          f"(defined: {defined})")


def _filters(filters: M.Filters, loader: Loader) -> None:
    for i, custom in enumerate(filters.custom):
        if custom.strategy == "regex" and custom.exe:
            from qtap_fluent.qtap.rulekit.errors import RuleSyntaxError
            from qtap_fluent.qtap.rulekit.parser import compile_regex

            try:
                compile_regex(custom.exe, 0)
            except RuleSyntaxError as exc:
                loader.report(custom.span_of("exe"), R.REGEX,
                              f"tap.filters.custom[{i}].exe: {exc.message}")
    for i, group in enumerate(filters.groups):
        if group not in S.FILTER_GROUPS:
            hint = S.FILTER_GROUP_HINTS.get(group)
            extra = f"; did you mean {hint!r}?" if hint else ""
            loader.report(filters.span_of(f"groups[{i}]"), R.FILTER_GROUP,
                          f"tap.filters.groups[{i}]: unknown group {group!r} (Qtap ignores it); "
                          f"known: {', '.join(S.FILTER_GROUPS)}{extra}")


def _domains(tap: M.Tap, loader: Loader) -> None:
    for i, ep in enumerate(tap.endpoints):
        if ep.domain and not _HOSTNAME.match(ep.domain):
            loader.report(ep.span_of("domain"), R.DOMAIN,
                          f"tap.endpoints[{i}].domain: {ep.domain!r} is not a valid host name "
                          f"(RFC 952: letters, digits, '-' and '.', starting with a letter; "
                          f"no wildcards)")


def _store_ids(config: M.QtapConfig, loader: Loader) -> None:
    ids: dict[str, set[str]] = {}
    groups: tuple[tuple[str, tuple[M.EventStore | M.ObjectStore, ...]], ...] = (
        ("event_stores", config.services.event_stores),
        ("object_stores", config.services.object_stores))
    for kind, stores in groups:
        seen: dict[str, M.Span] = {}
        for i, store in enumerate(stores):
            if store.id is None:
                continue
            if store.id in seen:
                loader.report(store.span_of("id"), R.DUPLICATE_ID,
                              f"services.{kind}[{i}].id: {store.id!r} is already used "
                              f"(line {seen[store.id].line})")
            seen.setdefault(store.id, store.span_of("id"))
        # Later entries without an id get generated ids eventstore-N / objectstore-N.
        ids[kind] = set(seen)
    for name, stack in config.stacks.items():
        for j, plugin in enumerate(stack.plugins):
            cfg = plugin.config
            if isinstance(cfg, M.HttpCaptureConfig) and cfg.object_store is not None:
                _store_ref(cfg.object_store, ids["object_stores"], "objectstore-",
                           f"stacks.{name}.plugins[{j}].config.object_store", loader)
    for i, store in enumerate(config.services.object_stores):
        if store.event_store is not None:
            _store_ref(store.event_store, ids["event_stores"], "eventstore-",
                       f"services.object_stores[{i}].event_store", loader)


def _store_ref(ref: M.StoreRef, ids: set[str], generated: str, where: str,
               loader: Loader) -> None:
    if ref.disabled or not ref.id or ref.id in ids or ref.id.startswith(generated):
        return
    known = ", ".join(sorted(ids)) or "none has an id"
    loader.report(ref.span_of("id"), R.UNKNOWN_STORE,
                  f"{where}.id: no store has id {ref.id!r} (ids: {known})")


def _macros(config: M.QtapConfig, loader: Loader) -> Environment:
    """Check macro names and expressions; return the environment rules are checked against."""
    from qtap_fluent.qtap.rulekit import Environment
    from qtap_fluent.qtap.rulekit.functions import FUNCTIONS

    trees: dict[str, RuleNode] = {}
    macros = config.rulekit.macros if config.rulekit is not None else ()
    seen: dict[str, M.Span] = {}
    for i, macro in enumerate(macros):
        where = f"rulekit.macros[{i}]"
        if not macro.name:
            continue
        if macro.name in seen:
            loader.report(macro.span_of("name"), R.MACRO_NAME,
                          f"{where}.name: macro {macro.name!r} is already defined "
                          f"(line {seen[macro.name].line})")
            continue
        seen[macro.name] = macro.span_of("name")
        fn = FUNCTIONS.get(macro.name)
        if fn is not None:
            loader.report(macro.span_of("name"), R.MACRO_NAME,
                          f"{where}.name: {macro.name!r} is a {fn.origin} function name")
            continue
        tree = _parse(macro.expr, macro.span_of("expr"), f"{where}.expr", loader)
        if tree is not None:
            trees[macro.name] = tree
    _cycles(trees, seen, loader)
    env = Environment(trees)
    for i, macro in enumerate(macros):
        if trees.get(macro.name) is None or seen.get(macro.name) != macro.span_of("name"):
            continue
        span = macro.span_of("expr")
        for message, offset in env.unknown_calls(trees[macro.name]):
            line, col = locate(loader.lines, (span.line, span.col), macro.expr, offset)
            loader.report((line, col), R.RULE_FUNCTION,
                          f"rulekit.macros[{i}].expr: {message}; rules using this macro will "
                          "never match")
    return env


def _cycles(trees: dict[str, RuleNode], spans: dict[str, M.Span], loader: Loader) -> None:
    from qtap_fluent.qtap.rulekit.ast import calls

    uses = {name: [c.name for c in calls(tree) if c.name in trees]
            for name, tree in trees.items()}
    reported: set[str] = set()
    for start in uses:
        stack: list[tuple[str, list[str]]] = [(start, [start])]
        while stack:
            name, path = stack.pop()
            for nxt in uses.get(name, ()):
                if nxt == start:
                    if start not in reported:
                        reported.update(path)
                        loader.report(spans[start], R.MACRO_CYCLE,
                                      "macros refer to each other in a cycle: "
                                      + " -> ".join(path + [start]))
                elif nxt not in path:
                    stack.append((nxt, path + [nxt]))


def _expressions(config: M.QtapConfig) -> Iterator[tuple[str, M.CaptureRule | M.AccessLogRule
                                                         | M.ControlRule]]:
    for name, stack in config.stacks.items():
        for j, plugin in enumerate(stack.plugins):
            cfg = plugin.config
            if isinstance(cfg, M.HttpCaptureConfig):
                for k, rule in enumerate(cfg.rules):
                    yield f"stacks.{name}.plugins[{j}].config.rules[{k}].expr", rule
            elif isinstance(cfg, M.AccessLogConfig):
                for k, arule in enumerate(cfg.rules):
                    yield f"stacks.{name}.plugins[{j}].config.rules[{k}].expr", arule
    if config.control is not None:
        for k, crule in enumerate(config.control.rules):
            yield f"control.rules[{k}].expr", crule


def _expression(rule: M.CaptureRule | M.AccessLogRule | M.ControlRule, where: str,
                env: Environment, loader: Loader) -> None:
    if not rule.expr:
        return
    span = rule.span_of("expr")
    tree = _parse(rule.expr, span, where, loader)
    if tree is None:
        return
    for message, offset in env.unknown_calls(tree):
        line, col = locate(loader.lines, (span.line, span.col), rule.expr, offset)
        loader.report((line, col), R.RULE_FUNCTION, f"{where}: {message}; the rule will never "
                      "match")


def _parse(expr: str, span: M.Span, where: str, loader: Loader) -> RuleNode | None:
    from qtap_fluent.qtap.rulekit import RuleSyntaxError, parse

    try:
        return parse(expr)
    except RuleSyntaxError as exc:
        line, col = locate(loader.lines, (span.line, span.col), expr, exc.offset)
        loader.report((line, col), R.RULE_SYNTAX,
                      f"{where}: rule does not parse: {exc.message} (character "
                      f"{exc.offset + 1} of the expression)", Level.ERROR)
        return None
