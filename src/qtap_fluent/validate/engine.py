"""Run every registered rule over a deployment; return the problems. Never prints.

``run(paths)`` is what ``qtap-fluent validate`` and the tests call: discover and load the files,
run the checks in registry order, then sort and de-duplicate (a problem found through two main
configs that include the same file is one problem).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qtap_fluent.problems import Level, Problem
from qtap_fluent.validate import deployment as deployment_mod
from qtap_fluent.validate.deployment import Deployment
from qtap_fluent.validate.registry import RuleInfo, load_all


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """Problems sorted by place, and how many files were checked."""

    problems: tuple[Problem, ...]
    files: int
    deployment: Deployment


def run_rules(deployment: Deployment, rules: dict[str, RuleInfo]) -> list[Problem]:
    """Loader problems plus every rule's problems, sorted and de-duplicated."""
    found = list(deployment.problems)
    for rule in rules.values():
        if rule.check is None:
            continue
        try:
            found.extend(rule.check(deployment))
        except Exception as exc:  # noqa: BLE001 - a rule bug must not hide other findings
            path = deployment.files[0].path if deployment.files else "."
            found.append(Problem(path=path, line=1, col=1, level=Level.ERROR,
                                 rule="validator-crash",
                                 message=f"rule {rule.id} failed: {type(exc).__name__}: {exc}"))
    unique = {(p.path, p.line, p.col, p.rule, p.message): p for p in found}
    return sorted(unique.values(), key=lambda p: (*p.sort_key(), p.message))


def run(paths: Sequence[str], rules: dict[str, RuleInfo] | None = None) -> Result:
    """Validate the files and folders ``paths`` with ``rules`` (default: the whole registry)."""
    rules = load_all() if rules is None else rules
    loaded = deployment_mod.load(paths)
    try:
        problems = run_rules(loaded, rules)
    finally:
        loaded.manifests.cleanup()
    # Problems found in files carried by ConfigMaps point at the manifest lines.
    problems = sorted({loaded.manifests.remap(p) for p in problems},
                      key=lambda p: (*p.sort_key(), p.message))
    return Result(problems=tuple(problems), files=len(loaded.files), deployment=loaded)
