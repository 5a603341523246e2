"""The corpus against a real Fluent Bit 5.1.1: ``fluent-bit --dry-run`` agrees with each case.

A case whose expected problems include one that dry-run catches (README.md's table: syntax,
unknown plugins and properties, missing Parsers_File, bad parser regex, bad Log_Level, broken
Lua...) must fail dry-run; every other case must pass it, which is the point of validate: those
are the mistakes dry-run lets through. Skipped without a ``fluent-bit`` binary.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from validate_helpers import BROKEN, VALID, read_expect

FLUENT_BIT = shutil.which("fluent-bit")
pytestmark = [pytest.mark.fluentbit,
              pytest.mark.skipif(FLUENT_BIT is None, reason="no fluent-bit binary on PATH")]

#: Rule ids for mistakes ``fluent-bit --dry-run`` (5.1.1) reports.
DRY_RUN_CATCHES = {"fb-syntax", "fb-indentation", "fb-include", "fb-unknown-plugin",
                   "fb-unknown-property", "fb-parsers-file", "fb-parser-regex", "fb-log-level",
                   "fb-lua-script", "fb-parser-in-main", "yaml-syntax"}
MAINS = ("fluent-bit.conf", "fluent-bit.yaml")


def _cases() -> list[tuple[Path, Path]]:
    out = []
    for case in sorted([*BROKEN.iterdir(), *VALID.iterdir()]):
        for name in MAINS:
            main = case / name
            if main.is_file() and b"\0" not in main.read_bytes():
                out.append((case, main))
    return out


CASES = _cases()


@pytest.mark.parametrize(("case", "main"), CASES,
                         ids=[f"{c.parent.name}/{c.name}/{m.name}" for c, m in CASES])
def test_dry_run_agrees(case: Path, main: Path) -> None:
    caught = sorted({rule for file, _line, rule in read_expect(case)
                     if rule in DRY_RUN_CATCHES and file.endswith((".conf", ".yaml", ".lua"))
                     and not file.startswith(("qtap", "docker-compose"))})
    assert FLUENT_BIT is not None
    proc = subprocess.run([FLUENT_BIT, "--dry-run", "-c", main.name], cwd=case,
                          capture_output=True, text=True, timeout=30, check=False)
    log = (proc.stdout + proc.stderr)[-2000:]
    if caught:
        assert proc.returncode != 0, f"dry-run accepted a case with {caught}:\n{log}"
    else:
        assert proc.returncode == 0, f"dry-run rejected a case validate calls dry-run-clean:\n{log}"
