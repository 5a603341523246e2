"""The guide's Fluent Bit configs (reference/qtap-fluent-bit-guide.txt, copied to
tests/data/fluentbit/guide/) load and check clean, except the guide's own grep bug."""

from __future__ import annotations

from pathlib import Path

import pytest

from qtap_fluent.fluentbit.config.checks import run_checks
from qtap_fluent.fluentbit.config.checks.base import SimpleView
from qtap_fluent.fluentbit.config.load import load_file
from qtap_fluent.problems import Problem

GUIDE = Path(__file__).parent.parent / "data" / "fluentbit" / "guide"
MAINS = sorted(p.name for p in GUIDE.iterdir() if not p.name.startswith("parsers"))


def check(name: str, forward_tags: list[str]) -> list[Problem]:
    view = SimpleView([load_file(str(GUIDE / name), env={})], forward_tags=forward_tags)
    return [p for p in run_checks(view) if isinstance(p, Problem)]


@pytest.mark.parametrize("name", [m for m in MAINS if m != "grep-domain.conf"])
@pytest.mark.parametrize("tags", [[], ["docker.qtap"]], ids=["tags-unknown", "compose-tag"])
def test_guide_config_is_clean(name: str, tags: list[str]) -> None:
    problems = check(name, tags)
    assert problems == [], "\n".join(p.format() for p in problems)


def test_guide_domain_grep_bug_is_reported() -> None:
    problems = check("grep-domain.conf", ["docker.qtap"])
    assert [(p.rule, p.line) for p in problems] == [
        ("fb-grep-dotted-key", 31), ("fb-grep-dotted-key", 37)]
    assert "$request['url']" in problems[0].message


def test_guide_has_every_config() -> None:
    assert {"fluent-bit.conf", "s3.conf", "minio.conf", "cloudwatch.conf", "multiple.conf",
            "grep-domain.conf", "tail.conf", "fluent-bit.yaml"} <= set(MAINS)


def test_wrong_compose_tag_is_reported() -> None:
    problems = check("fluent-bit.conf", ["docker.other"])
    assert {p.rule for p in problems} == {"fb-match-no-input", "fb-input-unconsumed"}
