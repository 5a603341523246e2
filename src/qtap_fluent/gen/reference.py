"""The reference deployment kept at the repository root, rendered by ``gen``.

Layout: ``conf/`` holds the Qtap config and the stdout pipeline (``fluent-bit.conf`` and
``fluent-bit.yaml``), ``conf/<kind>/`` the pipeline of each other output kind, ``parsers/`` the
parsers files and ``compose/docker-compose.<kind>.yaml`` one compose file per output kind, whose
mounts point at those files. A test regenerates the tree and fails on any difference::

    python -m qtap_fluent.gen.reference [ROOT] [--check]
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

import yaml

from qtap_fluent.gen import files as gf
from qtap_fluent.gen.spec import OUTPUT_KINDS, GenSpec

#: The guide's placeholder bucket, so the s3 example reads like the guide.
EXAMPLE_BUCKET = "your-bucket-name"


def default_qtap_text() -> str:
    return (resources.files("qtap_fluent.assets") / "qtap" / "default.yaml").read_text()


def render_tree() -> dict[str, bytes]:
    """``{path relative to the repo root: bytes}`` for the whole reference tree."""
    data = yaml.safe_load(default_qtap_text())
    tree: dict[str, bytes] = {}
    for kind in OUTPUT_KINDS:
        conf_dir = "conf" if kind == "stdout" else f"conf/{kind}"
        spec = GenSpec(source_name="the bundled default Qtap config", outputs=[kind],
                       bucket=EXAMPLE_BUCKET if kind == "s3" else None)
        mounts = {
            gf.FB_YAML: f"../{conf_dir}/{gf.FB_YAML}",
            gf.FB_CONF: f"../{conf_dir}/{gf.FB_CONF}",
            gf.PARSERS_YAML: f"../parsers/{gf.PARSERS_YAML}",
            gf.PARSERS_CONF: f"../parsers/{gf.PARSERS_CONF}",
            gf.QTAP_CONFIG: f"../conf/{gf.QTAP_CONFIG}",
            gf.SERVE_YAML: f"../{conf_dir}/{gf.SERVE_YAML}",
        }
        rendered = gf.render(spec, data, mounts=mounts)
        tree[f"{conf_dir}/{gf.FB_CONF}"] = rendered[gf.FB_CONF]
        tree[f"{conf_dir}/{gf.FB_YAML}"] = rendered[gf.FB_YAML]
        tree[f"compose/docker-compose.{kind}.yaml"] = rendered[gf.COMPOSE]
        for extra in (gf.LIFECYCLE, gf.SERVE_YAML):
            if extra in rendered:
                tree[f"{conf_dir}/{extra}"] = rendered[extra]
        if kind == "stdout":
            tree[f"conf/{gf.QTAP_CONFIG}"] = rendered[gf.QTAP_CONFIG]
            tree[f"parsers/{gf.PARSERS_CONF}"] = rendered[gf.PARSERS_CONF]
            tree[f"parsers/{gf.PARSERS_YAML}"] = rendered[gf.PARSERS_YAML]
    return tree


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    args = [a for a in args if a != "--check"]
    root = Path(args[0]) if args else Path.cwd()
    stale = []
    for rel, data in render_tree().items():
        path = root / rel
        current = path.read_bytes() if path.exists() else None
        if current == data:
            continue
        stale.append(rel)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    verb = "differ" if check else "written"
    for rel in stale:
        print(f"{rel}: {verb}", file=sys.stderr)
    return 1 if (check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
