"""The corpus: every broken case reports each expected rule at its line; valid cases are clean.

Cases live in ``tests/data/validate/{broken,valid}/<case>/`` with an ``expect.txt`` of
``file:line rule-id`` lines. For a broken case each listed problem must be reported (others may
be too). For a valid case nothing may be an error, and the warnings/info reported must be exactly
the ones listed (the guide's deployment listens on 0.0.0.0 and captures full payloads).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from validate_helpers import BROKEN, VALID, read_expect

from qtap_fluent.problems import Level, Problem
from qtap_fluent.validate import engine, registry

BROKEN_CASES = sorted(p for p in BROKEN.iterdir() if p.is_dir())
VALID_CASES = sorted(p for p in VALID.iterdir() if p.is_dir())


def _found(case: Path, problems: tuple[Problem, ...]) -> set[tuple[str, int, str]]:
    return {(os.path.relpath(os.path.abspath(p.path), case), p.line, p.rule) for p in problems}


def _show(problems: tuple[Problem, ...]) -> str:
    return "\n".join(p.format() for p in problems) or "(no problems)"


def test_corpus_is_big_enough() -> None:
    assert len(BROKEN_CASES) >= 40
    assert all(read_expect(c) for c in BROKEN_CASES), "every broken case lists its problems"


@pytest.mark.parametrize("case", BROKEN_CASES, ids=[c.name for c in BROKEN_CASES])
def test_broken_case(case: Path, rules: dict[str, registry.RuleInfo]) -> None:
    expected = read_expect(case)
    unknown = sorted({rule for _, _, rule in expected if rule not in rules})
    assert not unknown, f"expect.txt names rules the registry lacks: {unknown}"
    result = engine.run([str(case)], rules)
    found = _found(case, result.problems)
    missing = [e for e in expected if e not in found]
    assert not missing, f"not reported: {missing}\nreported:\n{_show(result.problems)}"
    assert not any(p.rule == "validator-crash" for p in result.problems), _show(result.problems)


@pytest.mark.parametrize("case", VALID_CASES, ids=[c.name for c in VALID_CASES])
def test_valid_case(case: Path, rules: dict[str, registry.RuleInfo]) -> None:
    result = engine.run([str(case)], rules)
    errors = [p for p in result.problems if p.level is Level.ERROR]
    assert not errors, _show(result.problems)
    others = {f for f in _found(case, result.problems)}
    assert others == set(read_expect(case)), _show(result.problems)
