"""The registry: one entry per id; repeated declarations agree or fail loudly."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from qtap_fluent.problems import Level, Problem
from qtap_fluent.validate import registry


@pytest.fixture
def scratch() -> Iterator[str]:
    rule_id = "test-scratch-rule"
    yield rule_id
    registry.RULES.pop(rule_id, None)


def test_same_declaration_twice_is_one_rule(scratch: str) -> None:
    registry.declare(scratch, Level.ERROR, "yaml", "first")
    registry.declare(scratch, Level.ERROR, "yaml", "second wording")
    assert registry.RULES[scratch].doc == "first"


def test_declarations_that_disagree_on_level_fail(scratch: str) -> None:
    registry.declare(scratch, Level.ERROR, "yaml", "x")
    with pytest.raises(ValueError, match="two levels"):
        registry.declare(scratch, Level.WARNING, "yaml", "x")


def test_two_checks_for_one_id_fail(scratch: str) -> None:
    def check(_: object) -> Iterator[Problem]:
        yield from ()

    registry.register(scratch, Level.ERROR, "cross", "x")(check)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(scratch, Level.ERROR, "cross", "y")(check)


def test_every_registered_rule_is_documented() -> None:
    rules = registry.load_all()
    for rule in rules.values():
        assert rule.doc and rule.scope and rule.level in Level
