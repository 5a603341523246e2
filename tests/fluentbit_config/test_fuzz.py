"""Garbage in, problems out: the loaders and every check never raise (Hypothesis)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qtap_fluent.fluentbit.config.checks import run_checks
from qtap_fluent.fluentbit.config.checks.base import SimpleView
from qtap_fluent.fluentbit.config.load import load_file, load_text
from qtap_fluent.problems import Problem

FRAGMENTS = [
    "[SERVICE]", "[INPUT]", "[FILTER]", "[OUTPUT]", "[PARSER]", "[MULTILINE_PARSER]", "[", "]",
    "[X]", "    ", "  ", "\t", "        ", "Name", "name", "Match", "Match_Regex", "*", "docker.*",
    "forward", "grep", "lua", "s3", "stdout", "cloudwatch_logs", "parser", "rewrite_tag",
    "tail", "dummy", "Regex", "Exclude", "Rule", "$log", "$request['url']", "request.url",
    "Logical_Op", "AND", "script", "call", "code", "bucket", "total_file_size", "50M",
    "upload_chunk_size", "s3_key_format", "/$TAG[3]/$UUID", "$INDEX", "use_put_object", "On",
    "Port", "70000", "abc", "Format", "json_lines", "Parsers_File", "parsers.conf", "Key_Name",
    "@INCLUDE ", "@SET ", "a=b", "${A}", "${B:-x}", "${", "#", " # c", "(", "[a-", "\\",
    "log_retention_days", "region", "log_group_name", "log_stream_prefix", "Tag", " ", "\r",
    "é", "\x00", "function cb() end", "rule", "\"", "'",
]

classic_text = st.lists(
    st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=5), max_size=6).map("".join),
    max_size=30,
).map("\n".join)

YAML_FRAGMENTS = [
    "service:", "pipeline:", "inputs:", "filters:", "outputs:", "parsers:", "env:",
    "includes:", "multiline_parsers:", "rules:", "processors:", "logs:", "- ", "  ", "    ",
    "name: ", "match: ", "'*'", "forward", "grep", "s3", "regex: ", "[a, b]", "{a: b}",
    "port: 7", "${X}", "logLevel: ", "bucket: b", "&a", "*a", "<<: *a", "- name: x", ":", "\t",
    "upstream_servers:", "nodes:", "plugins:", "customs:", "extensions:", "---", "? ", "!!str",
]

yaml_text = st.lists(
    st.lists(st.sampled_from(YAML_FRAGMENTS) | st.text(max_size=4), max_size=6).map("".join),
    max_size=25,
).map("\n".join)

FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _check_all(cf: object) -> None:
    problems = run_checks(SimpleView([cf], parsers=[cf], forward_tags=["a.b"]))  # type: ignore[list-item]
    assert all(isinstance(p, Problem) and p.line >= 1 and p.col >= 1 for p in problems)


@FUZZ
@given(classic_text)
def test_classic_text_never_raises(text: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        cf = load_text(text, str(Path(d) / "f.conf"), "classic", env={})
        _check_all(cf)


@FUZZ
@given(yaml_text)
def test_yaml_text_never_raises(text: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        cf = load_text(text, str(Path(d) / "f.yaml"), "yaml", env={})
        _check_all(cf)


@FUZZ
@given(st.binary(max_size=300), st.sampled_from(["f.conf", "f.yaml"]))
def test_random_bytes_never_raise(data: bytes, name: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        path.write_bytes(data)
        cf = load_file(str(path), env={})
        _check_all(cf)


@FUZZ
@given(st.lists(st.sampled_from(["a.conf", "b.conf", "*.conf", "c/*.conf", "nope.conf",
                                 "a.yaml", "../a.conf"]), max_size=4),
       st.lists(st.sampled_from(["a.conf", "b.conf", "c/d.conf", "a.yaml"]), max_size=4))
def test_random_include_graphs_never_raise(targets: list[str], extra: list[str]) -> None:
    """Files that include each other in random ways (cycles, globs, twice, missing)."""
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / "c").mkdir()
        incl = "".join(f"@INCLUDE {t}\n" for t in targets)
        for name in ["a.conf", "b.conf", "c/d.conf", *extra]:
            if name.endswith(".yaml"):
                text = "includes:\n" + "".join(f"  - {t}\n" for t in targets) or "{}\n"
            else:
                text = incl + "[INPUT]\n    Name dummy\n"
            (root / name).write_text(text)
        cf = load_file(str(root / "a.conf"), env={})
        # A .yaml @INCLUDEd from a classic file is read as classic, as Fluent Bit does.
        assert all(p.rule in ("fb-include", "fb-syntax", "fb-indentation", "fb-empty-section",
                              "yaml-syntax") for p in cf.problems)
        _check_all(cf)
