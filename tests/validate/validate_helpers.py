"""Helpers for the validate tests: where the corpus is, expect.txt, the rule registry."""

from __future__ import annotations

from pathlib import Path

from qtap_fluent.validate import registry

DATA = Path(__file__).resolve().parent.parent / "data" / "validate"
BROKEN = DATA / "broken"
VALID = DATA / "valid"


def available_rules() -> dict[str, registry.RuleInfo]:
    """The whole registry: every module ``registry.RULE_MODULES`` lists must import."""
    return registry.load_all()


def read_expect(case: Path) -> list[tuple[str, int, str]]:
    """``expect.txt``: one ``file:line rule-id`` per line; ``#`` starts a comment."""
    out: list[tuple[str, int, str]] = []
    path = case / "expect.txt"
    if not path.exists():
        return out
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where, rule = line.split()
        file, lineno = where.rsplit(":", 1)
        out.append((file, int(lineno), rule))
    return out
