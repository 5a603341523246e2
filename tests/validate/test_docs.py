"""The CI examples in docs/validate.md and the pre-commit hook definition are valid as written."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from qtap_fluent.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "validate.md"
HOOKS = ROOT / ".pre-commit-hooks.yaml"


def _yaml_blocks() -> list[Any]:
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.DOTALL)]


def _vendored_schema(name: str) -> Any:
    import importlib.util

    spec = importlib.util.find_spec("check_jsonschema")
    assert spec is not None and spec.submodule_search_locations
    base = Path(next(iter(spec.submodule_search_locations)))
    return json.loads((base / "builtin_schemas" / "vendor" / name).read_text())


def test_github_workflow_example_is_a_valid_workflow() -> None:
    import jsonschema

    workflow = _yaml_blocks()[0]
    workflow["on"] = workflow.pop(True)  # YAML 1.1 reads the key `on` as true; GitHub does not
    jsonschema.validate(workflow, _vendored_schema("github-workflows.json"))
    steps = workflow["jobs"]["validate"]["steps"]
    assert any("qtap-fluent validate --format github" in s.get("run", "") for s in steps)


def test_pre_commit_hook_matches_the_cli() -> None:
    (hook,) = yaml.safe_load(HOOKS.read_text())
    assert {"id", "name", "entry", "language"} <= set(hook)
    assert hook["pass_filenames"] is False
    argv = hook["entry"].split()[1:] + hook["args"]
    assert argv[0] == "validate"
    build_parser().parse_args(argv)  # raises UsageError if the hook's command line is wrong
    config = next(b for b in _yaml_blocks() if isinstance(b, dict) and "repos" in b)
    assert config["repos"][0]["hooks"][0]["id"] == hook["id"]
    assert re.search(hook["files"], "deploy/fluent-bit.conf")
    assert not re.search(hook["files"], "README.md")
