"""The reference deployment at the repository root is exactly what ``gen`` renders today."""

from __future__ import annotations

from pathlib import Path

from qtap_fluent.gen.reference import render_tree

ROOT = Path(__file__).resolve().parents[2]


def test_reference_tree_is_up_to_date() -> None:
    stale = []
    for rel, data in render_tree().items():
        path = ROOT / rel
        if not path.is_file() or path.read_bytes() != data:
            stale.append(rel)
    assert not stale, ("reference deployment out of date; run "
                       f"`python -m qtap_fluent.gen.reference` at the repo root: {stale}")


def test_reference_tree_has_no_stray_files() -> None:
    expected = set(render_tree())
    present = {str(p.relative_to(ROOT)) for d in ("conf", "parsers", "compose")
               for p in (ROOT / d).rglob("*") if p.is_file()}
    assert present == expected


def test_compose_mounts_resolve() -> None:
    import yaml

    for compose in (ROOT / "compose").glob("docker-compose.*.yaml"):
        doc = yaml.safe_load(compose.read_text())
        for service in doc["services"].values():
            for volume in service.get("volumes", []):
                host = volume.split(":")[0]
                if host.startswith("../"):
                    assert (compose.parent / host).resolve().is_file(), (compose.name, host)
