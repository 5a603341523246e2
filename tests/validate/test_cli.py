"""``qtap-fluent validate`` end to end: exit codes, formats, --list-rules, a real subprocess."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from validate_helpers import BROKEN, VALID

from qtap_fluent.cli.main import main

GUIDE = VALID / "guide-stdout"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["validate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_clean_deployment_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(GUIDE))
    assert code == 0
    assert "0 error(s)" in out


def test_warnings_fail_only_with_strict(capsys: pytest.CaptureFixture[str]) -> None:
    # The guide listens on 0.0.0.0 without shared_key: a warning.
    assert run(capsys, str(GUIDE))[0] == 0
    code, out, _ = run(capsys, "--strict", str(GUIDE))
    assert code == 1
    assert "[security-forward-exposed]" in out


def test_errors_exit_1_with_text_lines(capsys: pytest.CaptureFixture[str]) -> None:
    case = BROKEN / "cross-port-mismatch"
    code, out, _ = run(capsys, str(case))
    assert code == 1
    line = next(l for l in out.splitlines() if "[cross-forward-port]" in l)
    assert re.match(rf"{re.escape(str(case))}/docker-compose.yaml:24:\d+: error: ", line)


def test_missing_path_is_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _out, err = run(capsys, str(tmp_path / "nope"))
    assert code == 2
    assert "nope" in err and "Traceback" not in err


def test_bad_format_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--format", "xml", str(GUIDE))
    assert code == 2
    assert "xml" in err


def test_default_path_is_current_folder(capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    shutil.copytree(BROKEN / "cross-port-mismatch", tmp_path / "d")
    monkeypatch.chdir(tmp_path / "d")
    code, out, _ = run(capsys)
    assert code == 1
    assert out.startswith("docker-compose.yaml:") or "\ndocker-compose.yaml:" in out


def test_json_format(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--format", "json", str(BROKEN / "cross-port-mismatch"))
    doc = json.loads(out)
    assert code == 1
    assert doc["summary"]["errors"] >= 1
    hit = [p for p in doc["problems"] if p["rule"] == "cross-forward-port"]
    assert hit and hit[0]["line"] == 24 and hit[0]["level"] == "error"
    assert set(hit[0]) == {"path", "line", "col", "level", "rule", "message"}


def test_sarif_format(capsys: pytest.CaptureFixture[str]) -> None:
    _code, out, _ = run(capsys, "--format", "sarif", str(BROKEN / "cross-port-mismatch"))
    doc = json.loads(out)
    assert doc["version"] == "2.1.0"
    run0 = doc["runs"][0]
    rules = run0["tool"]["driver"]["rules"]
    ids = [r["id"] for r in rules]
    assert "cross-forward-port" in ids and "compose-schema" in ids
    result = next(r for r in run0["results"] if r["ruleId"] == "cross-forward-port")
    assert rules[result["ruleIndex"]]["id"] == "cross-forward-port"
    assert result["level"] == "error"
    loc = result["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"].endswith("cross-port-mismatch/docker-compose.yaml")
    assert loc["region"]["startLine"] == 24


def test_github_format(capsys: pytest.CaptureFixture[str]) -> None:
    _code, out, _ = run(capsys, "--format", "github", str(GUIDE))
    lines = out.splitlines()
    warn = next(l for l in lines if "security-forward-exposed" in l)
    assert re.fullmatch(r"::warning file=[^,]+/fluent-bit.conf,line=10,col=\d+,"
                        r"title=security-forward-exposed::.+", warn)
    assert any(l.startswith("::notice ") for l in lines)  # info -> notice


def test_list_rules(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--list-rules")
    assert code == 0
    rows = {line.split()[0]: line.split()[1:3] for line in out.splitlines()}
    for rule, level, scope in [("compose-schema", "error", "compose"),
                               ("cross-forward-port", "error", "cross"),
                               ("security-unredacted-capture", "info", "security"),
                               ("fb-unknown-plugin", "error", "fluentbit"),
                               ("qtap-enum", "error", "qtap"),
                               ("yaml-syntax", "error", "yaml")]:
        assert rows[rule] == [level, scope]


def test_unknown_file_named_explicitly(capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("just some notes\n")
    code, out, _ = run(capsys, str(f))
    assert code == 1
    assert "[file-unknown-kind]" in out
    # ...and ignored inside a folder.
    code, out, _ = run(capsys, str(tmp_path))
    assert code == 0
    assert "file-unknown-kind" not in out


def test_real_subprocess() -> None:
    exe = shutil.which("qtap-fluent")
    argv = [exe] if exe else [sys.executable, "-m", "qtap_fluent"]
    proc = subprocess.run([*argv, "validate", "--format", "json",
                           str(BROKEN / "security-aws-key-compose")],
                          check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    rules = {p["rule"] for p in json.loads(proc.stdout)["problems"]}
    assert "security-aws-key" in rules
    assert "Traceback" not in proc.stderr


def test_empty_folder_warns(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("# nothing to see\n")
    assert run(capsys, str(tmp_path))[0] == 0
    code, out, _ = run(capsys, "--strict", str(tmp_path))
    assert code == 1
    assert "[file-none-found]" in out
