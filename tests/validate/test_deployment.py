"""Discovery and classification of deployment files; garbage in gives problems, not tracebacks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from validate_helpers import VALID

from qtap_fluent.validate import classify, deployment, engine, registry

K = classify


@pytest.mark.parametrize(("name", "text", "kind"), [
    ("qtap.yaml", "tap:\n  direction: egress\n", K.QTAP),
    ("anything.yml", "stacks:\n  a:\n    plugins: []\n", K.QTAP),
    ("q.yaml", "services:\n  event_stores:\n    - type: stdout\n", K.QTAP),
    ("compose.yaml", "services:\n  fb:\n    image: fluent/fluent-bit\n", K.COMPOSE),
    ("deploy.yaml", "services:\n  web:\n    image: nginx\n", K.COMPOSE),
    ("docker-compose.override.yml", "x-common: 1\n", K.COMPOSE),
    ("fb.yaml", "service:\n  flush: 1\npipeline:\n  inputs: []\n", K.FB_YAML),
    ("fb.yaml", "pipeline:\n  outputs: []\n", K.FB_YAML),
    ("p.yaml", "parsers:\n  - name: json\n    format: json\n", K.PARSERS_YAML),
    ("k.yaml", "apiVersion: v1\nkind: ConfigMap\n", K.K8S),
    ("random.yaml", "foo: 1\n", K.UNKNOWN),
    ("fluent-bit.conf", "[SERVICE]\n    Flush 1\n[INPUT]\n    Name dummy\n", K.FB_CLASSIC),
    ("main", "@INCLUDE inputs.conf\n", K.FB_CLASSIC),
    ("inputs.conf", "[INPUT]\n    Name dummy\n", K.FB_CLASSIC),
    ("parsers.conf", "[PARSER]\n    Name json\n    Format json\n", K.PARSERS_CLASSIC),
    ("parsers.conf", "[MULTILINE_PARSER]\n    Name ml\n", K.PARSERS_CLASSIC),
    ("up.conf", "[UPSTREAM]\n    Name u\n[NODE]\n    Host h\n", K.FB_AUX),
    ("filter.lua", "function f(tag, ts, r) return 0, ts, r end\n", K.LUA),
    ("qtap.conf", "tap:\n  direction: all\n", K.QTAP),
    ("README.md", "# Title\n\ntext\n", K.UNKNOWN),
    ("README.md", "[Qtap](https://x) captures\n[INPUT]\n    Name dummy\n", K.UNKNOWN),
    ("pyproject.toml", "[build-system]\nrequires = []\n", K.UNKNOWN),
    ("setup.conf", "[metadata]\nname = x\n", K.UNKNOWN),
    ("notes", "Some prose.\n[INPUT]\n    Name dummy\n", K.UNKNOWN),
    ("test_x.py", "CONF = '''\n[INPUT]\n    Name dummy\n'''\ntap: 1\n", K.UNKNOWN),
    ("typo.conf", "# main\n[SERVICE]\n    Flush 1\n[INPTU]\n    Name dummy\n", K.FB_CLASSIC),
    # A truncated YAML file is still recognised by its top-level keys.
    ("fluent-bit.yaml", "pipeline:\n  inputs:\n    - name: [forward\n", K.FB_YAML),
])
def test_classify(name: str, text: str, kind: str) -> None:
    assert classify.classify(name, text) == kind


def _rules() -> dict[str, registry.RuleInfo]:
    from validate_helpers import available_rules

    return available_rules()


def test_guide_folder_is_loaded_and_linked() -> None:
    d = deployment.load([str(VALID / "guide-stdout")])
    kinds = sorted((os.path.basename(f.path), f.kind) for f in d.files)
    assert kinds == [("docker-compose.yaml", K.COMPOSE), ("fluent-bit.conf", K.FB_CLASSIC),
                     ("parsers.conf", K.PARSERS_CLASSIC), ("qtap-config.yaml", K.QTAP)]
    assert [os.path.basename(c.path) for c in d.fluentbit] == ["fluent-bit.conf"]
    assert [os.path.basename(c.path) for c in d.parsers] == ["parsers.conf"]
    assert d.forward_tags == ["docker.qtap"]
    # Parsers_File resolves through the compose mount back to the file next to it.
    (cfg,) = d.fluentbit
    assert d.host_path(cfg, "parsers.conf") == os.path.abspath(VALID / "guide-stdout" /
                                                               "parsers.conf")
    assert [os.path.basename(p.path) for p in d.parsers_for(cfg)] == ["parsers.conf"]


def test_included_files_are_not_mains(tmp_path: Path) -> None:
    (tmp_path / "main.conf").write_text("[SERVICE]\n    Flush 1\n@INCLUDE in.conf\n")
    (tmp_path / "in.conf").write_text("[INPUT]\n    Name dummy\n    Tag t\n")
    d = deployment.load([str(tmp_path)])
    assert [os.path.basename(c.path) for c in d.fluentbit] == ["main.conf"]


def test_mount_maps_container_path(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "fb.conf").write_text(
        "[SERVICE]\n    Parsers_File /etc/p/parsers.conf\n[INPUT]\n    Name dummy\n    Tag t\n"
        "[OUTPUT]\n    Name stdout\n    Match t\n")
    (tmp_path / "conf" / "parsers.conf").write_text("[PARSER]\n    Name j\n    Format json\n")
    (tmp_path / "compose.yaml").write_text(
        "services:\n  fb:\n    image: fluent/fluent-bit:5.1\n    volumes:\n"
        "      - ./conf/fb.conf:/cfg/fb.conf\n      - ./conf:/etc/p:ro\n"
        "    command: fluent-bit -c /cfg/fb.conf\n")
    d = deployment.load([str(tmp_path)])
    cfg = next(c for c in d.fluentbit if c.path.endswith("fb.conf"))
    assert d.host_path(cfg, "/etc/p/parsers.conf") == str(tmp_path / "conf" / "parsers.conf")
    result = engine.run([str(tmp_path)], _rules())
    assert not [p for p in result.problems if p.rule.startswith(("cross", "fb-parsers"))], \
        [p.format() for p in result.problems]


@pytest.mark.parametrize(("name", "content", "rule"), [
    ("fluent-bit.conf", b"\x00\x01\x02binary", "file-unreadable"),
    ("qtap.yaml", "tap:\n  direction: \xe9gress\n".encode("latin-1"), "file-unreadable"),
    ("fluent-bit.yaml", b"pipeline:\n  inputs:\n" + b"[" * 5000, "yaml-syntax"),
    ("qtap.yaml", b"tap:\n" + b"  - " * 3000 + b"x\n", "yaml-syntax"),
    ("docker-compose.yaml", b"services: [unterminated\n", "yaml-syntax"),
])
def test_garbage_named_explicitly(tmp_path: Path, name: str, content: bytes, rule: str) -> None:
    f = tmp_path / name
    f.write_bytes(content)
    result = engine.run([str(f)], _rules())
    assert rule in {p.rule for p in result.problems}, [p.format() for p in result.problems]
    assert "validator-crash" not in {p.rule for p in result.problems}


def test_binary_files_in_a_folder_are_skipped_unless_config_named(tmp_path: Path) -> None:
    (tmp_path / "image.bin").write_bytes(b"\x00\xff" * 100)
    (tmp_path / "blob").write_bytes(bytes(range(256)))
    assert [p.rule for p in engine.run([str(tmp_path)], _rules()).problems] == [
        "file-none-found"]
    (tmp_path / "broken.conf").write_bytes(b"\x00\xff")
    rules = {p.rule for p in engine.run([str(tmp_path)], _rules()).problems}
    assert rules == {"file-unreadable", "file-none-found"}


def test_huge_line_and_too_large_file(tmp_path: Path) -> None:
    (tmp_path / "fluent-bit.conf").write_text(
        "[INPUT]\n    Name dummy\n    Tag " + "x" * 2_000_000 + "\n"
        "[OUTPUT]\n    Name stdout\n    Match *\n")
    result = engine.run([str(tmp_path)], _rules())
    assert "validator-crash" not in {p.rule for p in result.problems}
    big = tmp_path / "big.yaml"
    with open(big, "wb") as fh:
        fh.truncate(deployment.MAX_FILE_BYTES + 1)
    result = engine.run([str(big)], _rules())
    assert [p.rule for p in result.problems] == ["file-unreadable"]


def test_deeply_nested_includes(tmp_path: Path) -> None:
    for i in range(100):
        (tmp_path / f"f{i}.conf").write_text(f"@INCLUDE f{i + 1}.conf\n")
    (tmp_path / "f100.conf").write_text("[INPUT]\n    Name dummy\n    Tag t\n")
    result = engine.run([str(tmp_path / "f0.conf")], _rules())
    assert "fb-include" in {p.rule for p in result.problems}
    assert "validator-crash" not in {p.rule for p in result.problems}


NAMES = ["fluent-bit.conf", "fluent-bit.yaml", "qtap.yaml", "docker-compose.yaml",
         "parsers.conf", "script.lua", "x"]
PIECES = ["[SERVICE]\n", "[INPUT]\n", "[OUTPUT]\n", "    Name forward\n", "    Port 24224\n",
          "    Match *\n", "@INCLUDE *.conf\n", "@SET a=b\n", "services:\n", "  fb:\n",
          "    image: fluent/fluent-bit\n", "    logging:\n      driver: fluentd\n",
          "tap:\n", "stacks:\n", "pipeline:\n", "  inputs:\n", "    - name: forward\n",
          "- ", "  ", "\t", ": ", "[", "{", "&a ", "*a\n", "\x00", "\xff", "\n"]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(files=st.dictionaries(st.sampled_from(NAMES),
                             st.lists(st.sampled_from(PIECES), max_size=30).map("".join)
                             | st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
                             min_size=1, max_size=4))
def test_fuzz_never_raises(tmp_path_factory: pytest.TempPathFactory,
                           files: dict[str, str]) -> None:
    d = tmp_path_factory.mktemp("fuzz")
    for name, text in files.items():
        (d / name).write_bytes(text.encode("utf-8", "surrogateescape")
                               if "\xff" not in text else text.encode("latin-1", "replace"))
    result = engine.run([str(d)], _rules())
    crashes = [p.format() for p in result.problems if p.rule == "validator-crash"]
    assert not crashes
    for p in result.problems:
        assert p.line >= 1 and p.col >= 1


def test_fifo_is_reported_not_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "fluent-bit.conf"
    os.mkfifo(fifo)
    result = engine.run([str(fifo)], _rules())
    assert [(p.rule, p.message) for p in result.problems] == [
        ("file-unreadable", "not a regular file")]


def test_registry_lists_every_rule_module() -> None:
    from qtap_fluent.fluentbit.config.checks import MODULES

    missing = [m for m in MODULES if m not in registry.RULE_MODULES]
    assert not missing, f"add to registry.RULE_MODULES: {missing}"
    assert len(set(registry.RULE_MODULES)) == len(registry.RULE_MODULES)


def test_kubernetes_manifests_are_checked(tmp_path: Path) -> None:
    k8s = tmp_path / "daemonset.yaml"
    k8s.write_text("apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: qtap\n"
                   "  nmespace: x\n")
    found = [(p.rule, p.line) for p in engine.run([str(k8s)]).problems]
    assert ("k8s-schema", 5) in found
    assert "file-not-checked" not in [rule for rule, _ in found]
