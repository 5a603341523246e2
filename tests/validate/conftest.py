"""Fixtures for the validate tests."""

from __future__ import annotations

import pytest
from validate_helpers import available_rules

from qtap_fluent.validate import registry


@pytest.fixture(scope="session")
def rules() -> dict[str, registry.RuleInfo]:
    return available_rules()
