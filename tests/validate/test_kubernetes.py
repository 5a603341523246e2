"""``validate`` on Kubernetes manifests: schemas offline, cross-checks, and the Fluent Bit
configs inside ConfigMaps checked like files, with problems at the manifest lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from qtap_fluent.cli.main import main
from qtap_fluent.problems import Level
from qtap_fluent.validate.engine import run
from tests.gen.test_gen import COMBOS, outputs_args

pytest.importorskip("kubernetes_validate")
CASES = [(kinds, agg) for kinds in COMBOS for agg in (False, True)]


def gen(tmp_path: Path, *args: str) -> Path:
    out = tmp_path / "deploy"
    assert main(["gen", "--target", "kubernetes", "--out", str(out), *args]) == 0
    return out / "k8s"


@pytest.mark.parametrize("kinds, agg", CASES,
                         ids=["+".join(k) + ("-agg" if a else "") for k, a in CASES])
def test_every_generated_manifest_set_validates_clean(tmp_path: Path, kinds: list[str],
                                                      agg: bool) -> None:
    k8s = gen(tmp_path, *outputs_args(kinds), *(["--aggregator"] if agg else []),
              "--aws-secret", "aws-creds", "--redact")
    result = run([str(k8s)])
    assert [p.format() for p in result.problems if p.level >= Level.WARNING] == []
    assert result.files >= 6


def edit(path: Path, old: str, new: str) -> int:
    """Replace ``old`` once; return the 1-based line where it was."""
    text = path.read_text()
    assert old in text, old
    line = text[:text.index(old)].count("\n") + 1
    path.write_text(text.replace(old, new, 1))
    return line


def problems(k8s: Path, rule: str) -> list[tuple[str, int]]:
    return [(Path(p.path).name, p.line) for p in run([str(k8s)]).problems if p.rule == rule]


def test_unknown_field_is_a_schema_error_at_its_line(tmp_path: Path) -> None:
    k8s = gen(tmp_path)
    line = edit(k8s / "daemonset.yaml", "      hostPID: true\n",
                "      hostPID: true\n      hostPid: true\n") + 1
    assert ("daemonset.yaml", line) in problems(k8s, "k8s-schema")


def test_wrong_type_is_a_schema_error(tmp_path: Path) -> None:
    k8s = gen(tmp_path)
    line = edit(k8s / "daemonset.yaml", "terminationGracePeriodSeconds: 30",
                "terminationGracePeriodSeconds: soon")
    assert ("daemonset.yaml", line) in problems(k8s, "k8s-schema")


def test_mounting_an_undefined_configmap(tmp_path: Path) -> None:
    k8s = gen(tmp_path)
    line = edit(k8s / "daemonset.yaml", "name: qtap-fluent-qtap\n", "name: qtap-fluent-qtapp\n")
    assert ("daemonset.yaml", line) in problems(k8s, "k8s-configmap")


def test_fluent_bit_started_with_a_missing_key(tmp_path: Path) -> None:
    k8s = gen(tmp_path)
    edit(k8s / "configmap-fluent-bit.yaml", "  fluent-bit.yaml: |", "  fluentbit.yaml: |")
    assert [n for n, _ in problems(k8s, "k8s-configmap")] == ["daemonset.yaml"]


def test_fluent_bit_problem_inside_a_configmap_points_at_the_manifest(tmp_path: Path) -> None:
    k8s = gen(tmp_path)
    line = edit(k8s / "configmap-fluent-bit.yaml", "          listen: 127.0.0.1\n",
                "          listen: 127.0.0.1\n          bogus_option: 1\n") + 1
    found = [p for p in run([str(k8s)]).problems if p.rule == "fb-unknown-property"]
    assert [(Path(p.path).name, p.line) for p in found] == [("configmap-fluent-bit.yaml", line)]
    assert found[0].message.startswith("fluent-bit.yaml: ")
    assert found[0].col == 11


def test_parser_missing_from_the_configmap(tmp_path: Path) -> None:
    k8s = gen(tmp_path, "--record-shape", "docker")
    edit(k8s / "configmap-fluent-bit.yaml", "generic_json_parser\n        format",
         "other_parser\n        format")
    assert [n for n, _ in problems(k8s, "fb-parser-filter")] == ["configmap-fluent-bit.yaml"]


def test_literal_credentials_in_env(tmp_path: Path) -> None:
    k8s = gen(tmp_path, "--output", "s3", "--bucket", "b-1", "--aws-secret", "aws")
    text = (k8s / "daemonset.yaml").read_text()
    start = text.index("        - name: AWS_SECRET_ACCESS_KEY")
    end = text.index("key: aws-secret-access-key", start) + len("key: aws-secret-access-key")
    (k8s / "daemonset.yaml").write_text(
        text[:start] + "        - name: AWS_SECRET_ACCESS_KEY\n"
        "          value: wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY" + text[end:])
    assert [n for n, _ in problems(k8s, "k8s-inline-secret")] == ["daemonset.yaml"]


def test_tiers_on_different_ports(tmp_path: Path) -> None:
    k8s = gen(tmp_path, "--aggregator")
    edit(k8s / "aggregator.yaml", "port: 24224", "port: 24225")
    assert [n for n, _ in problems(k8s, "k8s-forward-tiers")] == ["configmap-fluent-bit.yaml"]


def test_tiers_with_different_shared_keys(tmp_path: Path) -> None:
    k8s = gen(tmp_path, "--aggregator")
    edit(k8s / "configmap-aggregator.yaml", "shared_key: '${FORWARD_SHARED_KEY}'",
         "shared_key: other-key")
    assert "configmap-fluent-bit.yaml" in [n for n, _ in problems(k8s, "k8s-forward-tiers")]


def test_kustomization_resource_missing(tmp_path: Path) -> None:
    k8s = gen(tmp_path)
    (k8s / "namespace.yaml").unlink()
    assert [n for n, _ in problems(k8s, "k8s-kustomization")] == ["kustomization.yaml"]


def test_temp_files_are_removed(tmp_path: Path) -> None:
    import glob
    import tempfile

    before = set(glob.glob(f"{tempfile.gettempdir()}/qtap-fluent-cm-*"))
    run([str(gen(tmp_path))])
    assert set(glob.glob(f"{tempfile.gettempdir()}/qtap-fluent-cm-*")) <= before
