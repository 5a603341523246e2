"""Build the agent's ``Policy`` from a Qtap YAML file (``qtap_fluent.qtap.config`` model)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from qtap_fluent.agent import build
from qtap_fluent.agent.policy import HttpCapture, Policy, RecordRedactor, Rule
from qtap_fluent.errors import ConfigError
from qtap_fluent.problems import Level, Problem
from qtap_fluent.qtap import model as M
from qtap_fluent.qtap.config import load_file
from qtap_fluent.qtap.filters import matcher_for
from qtap_fluent.qtap.rulekit import Environment, RuleSyntaxError


def _capture(cfg: M.HttpCaptureConfig, env: Environment, where: str,
             warnings: list[str]) -> HttpCapture:
    rules: list[Rule] = []
    for i, r in enumerate(cfg.rules):
        try:
            matcher = env.compile(r.expr)
        except RuleSyntaxError as exc:
            # Qtap logs a rule that does not parse and skips it.
            warnings.append(f"{where}.rules[{i}] {r.name!r}: skipped: {exc}")
            continue
        rules.append(Rule(name=r.name, matcher=matcher,
                          level=build.LEVEL_ALIASES.get(r.level, r.level), format=r.format))
    return HttpCapture(level=build.LEVEL_ALIASES.get(cfg.level, cfg.level), format=cfg.format,
                       rules=tuple(rules))


def policy_from_config(cfg: M.QtapConfig, *, redactor: RecordRedactor | None = None,
                       own_pid: int | None = None,
                       warnings: list[str] | None = None) -> Policy:
    """The capture policy a Qtap config describes."""
    warns = warnings if warnings is not None else []
    macros = {m.name: m.expr for m in cfg.rulekit.macros} if cfg.rulekit else {}
    env = Environment(macros)
    stacks: dict[str, HttpCapture | None] = {}
    for name, stack in cfg.stacks.items():
        hc = stack.http_capture
        stacks[name] = _capture(hc, env, f"stacks.{name}", warns) if hc is not None else None
    tap = cfg.tap or M.Tap()
    pid = os.getpid() if own_pid is None else own_pid
    matcher = matcher_for(tap.filters)

    def exe_skip(exe: str, proc_pid: int) -> int:
        return matcher.skip_flags(exe, pid=proc_pid, own_pid=pid)

    has_filters = bool(tap.filters.custom or tap.filters.groups)
    return Policy(
        direction=tap.effective_direction, ignore_loopback=tap.ignore_loopback,
        exe_skip=exe_skip if has_filters else None, stacks=stacks, http_stack=tap.http.stack,
        endpoints={ep.domain.lower().rstrip("."): ep.http.stack for ep in tap.endpoints},
        redactor=redactor)


def load_policy(path: str | Path, *, redactor: RecordRedactor | None = None,
                own_pid: int | None = None) -> tuple[Policy, list[Problem]]:
    """Load ``path``; ConfigError (with the problems) when it has errors."""
    cfg, problems = load_file(path)
    errors: Iterable[Problem] = [p for p in problems if p.level >= Level.ERROR]
    if cfg is None or errors:
        raise ConfigError(f"{path}: the Qtap config has errors", list(problems))
    return policy_from_config(cfg, redactor=redactor, own_pid=own_pid), problems
