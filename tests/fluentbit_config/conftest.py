"""Helpers for the Fluent Bit config tests: write a deployment, load it, run the checks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from qtap_fluent.fluentbit.config.checks import run_checks
from qtap_fluent.fluentbit.config.checks.base import SimpleView
from qtap_fluent.fluentbit.config.load import load_file
from qtap_fluent.problems import Problem

Run = Callable[..., list[Problem]]


@pytest.fixture
def deploy(tmp_path: Path) -> Run:
    """``deploy({"name": text, ...}, main="fluent-bit.conf", forward_tags=[...])``: write the
    files, load the main config (and any ``parsers*`` files as standalone parsers files), run
    every Fluent Bit check; return the problems."""

    def run(files: dict[str, str], main: str = "fluent-bit.conf",
            forward_tags: list[str] | None = None, parsers: tuple[str, ...] = ()) -> list[Problem]:
        for name, text in files.items():
            p = tmp_path / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        view = SimpleView([load_file(str(tmp_path / main))],
                          parsers=[load_file(str(tmp_path / p)) for p in parsers],
                          forward_tags=list(forward_tags or []))
        return [p for p in run_checks(view) if isinstance(p, Problem)]

    return run
