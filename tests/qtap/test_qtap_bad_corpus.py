"""Every file in tests/data/qtap/bad/ names the problems it must produce (``# expect: RULE
LINE:COL``); the loader must report each of them, at that place, without raising."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from qtap_fluent.problems import Level
from qtap_fluent.qtap.config import load_file

BAD = Path(__file__).resolve().parents[1] / "data" / "qtap" / "bad"
EXPECT = re.compile(r"^# expect: (\S+) (\d+):(\d+)$", re.MULTILINE)
FILES = sorted(BAD.glob("*.yaml"))


def test_corpus_is_not_empty() -> None:
    assert len(FILES) >= 30


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_bad_file_reports_expected_problem(path: Path) -> None:
    expected = [(rule, int(line), int(col))
                for rule, line, col in EXPECT.findall(path.read_text())]
    assert expected, f"{path.name} has no '# expect:' line"
    _, problems = load_file(path)
    got = {(p.rule, p.line, p.col) for p in problems}
    for item in expected:
        assert item in got, f"{path.name}: expected {item}, got {sorted(got)}"
    for p in problems:
        assert p.path == str(path)
        assert p.message
        assert p.level in (Level.INFO, Level.WARNING, Level.ERROR)
