"""Loaders: positions, Fluent Bit's classic grammar quirks, YAML shape, includes, variables,
and garbage in -> problems out."""

from __future__ import annotations

import os
from pathlib import Path

from qtap_fluent.fluentbit.config import load
from qtap_fluent.fluentbit.config.load import load_file, load_text, section_kind, yaml_key
from qtap_fluent.fluentbit.config.model import (
    FILTER,
    INPUT,
    MULTILINE_PARSER,
    OTHER,
    OUTPUT,
    PARSER,
    SERVICE,
    Span,
)


def rules(cf: object) -> list[tuple[str, int]]:
    return [(p.rule, p.line) for p in cf.problems]  # type: ignore[attr-defined]


def test_classic_positions_case_and_values() -> None:
    text = "[SERVICE]\n    Flush   5\n\n[INPUT]\n    NAME  Forward\n    Tag docker.QTAP  \n"
    cf = load_text(text, "x.conf", "classic", env={})
    assert cf.problems == []
    service, inp = cf.sections
    assert (service.kind, inp.kind) == (SERVICE, INPUT)
    e = inp.entries[0]
    assert e.span is not None and e.value_span is not None
    assert (e.key, e.name, e.value) == ("NAME", "name", "Forward")
    assert (e.span.line, e.span.col, e.value_span.line, e.value_span.col) == (5, 5, 5, 11)
    assert inp.get("tag") == "docker.QTAP"  # value trimmed, case kept
    assert inp.plugin == "forward"
    assert service.entries[0].value_span == Span(path="x.conf", line=2, col=13)


def test_classic_crlf_and_comments() -> None:
    text = "# top\r\n[INPUT]\r\n    # indented comment\r\n    Name dummy\r\n"
    cf = load_text(text, "x.conf", "classic", env={})
    assert cf.problems == []
    assert cf.sections[0].get("name") == "dummy"


def test_classic_first_indent_rules_the_whole_file() -> None:
    text = "[INPUT]\n  Name dummy\n[OUTPUT]\n    Name stdout\n"
    cf = load_text(text, "x.conf", "classic", env={})
    # 4 spaces = exactly double the file's 2-space indent: a group line, allowed.
    assert cf.problems == []
    text = "[INPUT]\n  Name dummy\n[OUTPUT]\n   Name stdout\n"
    assert rules(load_text(text, "x.conf", "classic", env={})) == [("fb-indentation", 4)]


def test_classic_group() -> None:
    text = "[CUSTOM]\n    Name calyptia\n    [fleet]\n        key v\n    other w\n"
    cf = load_text(text, "x.conf", "classic", env={})
    assert cf.problems == []
    (custom,) = cf.sections
    assert custom.children[0].header == "fleet"
    assert custom.children[0].get("key") == "v"
    assert custom.get("other") == "w"


def test_section_prefix_matching() -> None:
    assert section_kind("SERV") == SERVICE
    assert section_kind("") == SERVICE  # strncasecmp with length 0 (Fluent Bit quirk)
    assert section_kind("Inputs") == INPUT
    assert section_kind("FILTERS") == FILTER
    assert section_kind("output") == OUTPUT
    assert section_kind("parser") == PARSER
    assert section_kind("multiline_parser") == MULTILINE_PARSER
    assert section_kind("INPUTX") == OTHER
    assert section_kind(" INPUT") == OTHER


def test_yaml_key_translation() -> None:
    assert yaml_key("logLevel") == "log_level"
    assert yaml_key("httpServer") == "http_server"
    assert yaml_key("Log_Level") == "Log_Level"
    assert yaml_key("log_Level") == "log_Level"  # has '_': kept
    assert yaml_key("storage.type") == "storage.type"


def test_variables_set_env_default_and_missing() -> None:
    text = ("@SET a=one\n[INPUT]\n    Name dummy\n    Tag ${a}.${B}.${C:-three}.${D}\n"
            "    Alias ${E:-}\n")
    cf = load_text(text, "x.conf", "classic", env={"B": "two"})
    tag = cf.sections[0].entry("tag")
    assert tag is not None
    assert tag.value == "one.two.three."
    assert tag.raw == "${a}.${B}.${C:-three}.${D}"
    assert tag.unresolved == ("D",)
    assert rules(cf) == [("fb-variable", 4)]
    assert cf.variables == {"a": "one"}


def test_yaml_sections_lists_and_positions() -> None:
    text = (
        "env:\n  - name: T\n    value: app\n"
        "service:\n  logLevel: debug\n"
        "pipeline:\n"
        "  inputs:\n    - name: dummy\n      tag: ${T}\n"
        "      processors:\n        logs:\n          - name: sql\n            query: x\n"
        "  filters:\n    - name: grep\n      match: '*'\n      regex:\n        - a b\n        - c d\n"
        "  outputs:\n    - name: stdout\n      match: '*'\n"
    )
    cf = load_text(text, "x.yaml", "yaml", env={})
    assert cf.problems == []
    kinds = [s.kind for s in cf.sections]
    assert kinds == [SERVICE, INPUT, FILTER, OUTPUT]
    assert cf.sections[0].entries[0].key == "log_level"
    inp = cf.sections[1]
    assert inp.get("tag") == "app"
    assert inp.children[0].kind == "processor" and inp.children[0].header == "logs"
    grep = cf.sections[2]
    regex = grep.get_all("regex")
    assert [e.value for e in regex] == ["a b", "c d"]
    assert [e.value_span for e in regex] == [Span(path="x.yaml", line=18, col=11),
                                             Span(path="x.yaml", line=19, col=11)]


def test_yaml_bad_shapes_are_problems() -> None:
    for text in ("- a\n- b\n", "pipeline: 3\n", "pipeline:\n  inputs: {name: x}\n",
                 "pipeline:\n  inputs:\n    - 3\n", "service: [a]\n",
                 "pipeline:\n  inputs:\n    - name: dummy\n      tag: {a: b}\n"):
        cf = load_text(text, "x.yaml", "yaml", env={})
        assert [p.rule for p in cf.problems] == ["fb-syntax"], text


def test_yaml_truncated_and_duplicate_keys() -> None:
    cf = load_text("pipeline:\n  inputs:\n    - name: 'dummy\n", "x.yaml", "yaml", env={})
    assert [p.rule for p in cf.problems] == ["yaml-syntax"]
    cf = load_text("service:\n  flush: 1\n  flush: 2\n", "x.yaml", "yaml", env={})
    assert [(p.rule, p.line) for p in cf.problems] == [("yaml-duplicate-key", 3)]


def test_yaml_includes_and_classic_includes(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "main.yaml").write_text("includes:\n  - sub/in.yaml\n  - sub/out*.yaml\n")
    (tmp_path / "sub" / "in.yaml").write_text("pipeline:\n  inputs:\n    - name: dummy\n")
    (tmp_path / "sub" / "out1.yaml").write_text("pipeline:\n  outputs:\n    - name: stdout\n")
    cf = load_file(str(tmp_path / "main.yaml"), env={})
    assert cf.problems == []
    assert [s.plugin for s in cf.sections] == ["dummy", "stdout"]
    assert cf.sections[0].span is not None
    assert cf.sections[0].span.path.endswith("in.yaml")
    assert len(cf.includes) == 2


def test_include_relative_to_including_file(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "main.conf").write_text("@INCLUDE a/one.conf\n")
    (tmp_path / "a" / "one.conf").write_text("@INCLUDE two.conf\n")
    (tmp_path / "a" / "two.conf").write_text("[INPUT]\n    Name dummy\n")
    cf = load_file(str(tmp_path / "main.conf"), env={})
    assert cf.problems == []
    assert cf.sections[0].span is not None and cf.sections[0].span.line == 1
    assert cf.sections[0].span.path.endswith(os.path.join("a", "two.conf"))


def test_more_than_1000_files(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    for i in range(1001):
        (d / f"{i:04}.conf").write_text("")
    (tmp_path / "main.conf").write_text("@INCLUDE d/*.conf\n")
    cf = load_file(str(tmp_path / "main.conf"), env={})
    assert [(p.rule, p.line) for p in cf.problems] == [("fb-include", 1)]
    assert "1000" in cf.problems[0].message


def test_deep_include_chain(tmp_path: Path) -> None:
    n = load.MAX_INCLUDE_DEPTH + 5
    for i in range(n):
        (tmp_path / f"f{i}.conf").write_text(f"@INCLUDE f{i + 1}.conf\n")
    (tmp_path / f"f{n}.conf").write_text("[INPUT]\n    Name dummy\n")
    cf = load_file(str(tmp_path / "f0.conf"), env={})
    assert [p.rule for p in cf.problems] == ["fb-include"]
    assert "deeper" in cf.problems[0].message


def test_garbage_files(tmp_path: Path) -> None:
    (tmp_path / "bin.conf").write_bytes(b"[INPUT]\n\x00\x01\x02garbage")
    cf = load_file(str(tmp_path / "bin.conf"), env={})
    assert [(p.rule, p.line) for p in cf.problems] == [("fb-syntax", 2)]
    (tmp_path / "latin.conf").write_bytes(b"[INPUT]\n    Name caf\xe9\n")
    cf = load_file(str(tmp_path / "latin.conf"), env={})
    assert [(p.rule, p.line) for p in cf.problems] == [("fb-syntax", 2)]
    (tmp_path / "huge.conf").write_text("[INPUT]\n    Name " + "x" * 2_000_000 + "\n")
    cf = load_file(str(tmp_path / "huge.conf"), env={})
    assert cf.problems == [] and len(cf.sections[0].get("name") or "") == 2_000_000
    (tmp_path / "deep.yaml").write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    cf = load_file(str(tmp_path / "deep.yaml"), env={})
    assert cf.problems and all(p.rule in ("yaml-syntax", "fb-syntax") for p in cf.problems)
    cf = load_file(str(tmp_path / "missing.conf"), env={})
    assert [p.rule for p in cf.problems] == ["fb-syntax"]
    (tmp_path / "empty.yaml").write_text("")
    assert load_file(str(tmp_path / "empty.yaml"), env={}).problems == []


def test_load_text_binary() -> None:
    cf = load_text("[INPUT]\n    Name x\0y\n", "x.conf", "classic", env={})
    assert [(p.rule, p.line) for p in cf.problems] == [("fb-syntax", 2)]
    assert cf.sections == []


def test_format_by_extension(tmp_path: Path) -> None:
    (tmp_path / "x.YML").write_text("pipeline:\n  inputs:\n    - name: dummy\n")
    assert load_file(str(tmp_path / "x.YML"), env={}).format == "yaml"
    (tmp_path / "x.cfg").write_text("[INPUT]\n    Name dummy\n")
    assert load_file(str(tmp_path / "x.cfg"), env={}).format == "classic"
