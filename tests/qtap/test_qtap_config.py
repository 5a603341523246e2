"""The Qtap config loader on the guide's configs, the full schema and its helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qtap_fluent.problems import Level, Problem
from qtap_fluent.qtap import model as M
from qtap_fluent.qtap import rules as R
from qtap_fluent.qtap.capture import CapturePolicy
from qtap_fluent.qtap.config import default_text, load, load_default, load_file
from qtap_fluent.validate.registry import RULES

DATA = Path(__file__).resolve().parents[1] / "data" / "qtap"
GUIDE_TXT = Path(__file__).resolve().parents[3] / "shared" / "reference" / \
    "qtap-fluent-bit-guide.txt"


def clean(text: str) -> M.QtapConfig:
    config, problems = load(text, "t.yaml")
    assert problems == [], [p.format() for p in problems]
    assert config is not None
    return config


def rules_of(problems: list[Problem]) -> list[str]:
    return [p.rule for p in problems]


# --- the guide ----------------------------------------------------------------------------

def test_bundled_default_is_the_guides_step1_config() -> None:
    if not GUIDE_TXT.exists():
        pytest.skip("shared/reference is not beside the repository")
    guide = GUIDE_TXT.read_text()
    start = guide.index("version: 2", guide.index("Step 1"))
    end = guide.index("stack: capture_all", start) + len("stack: capture_all")
    assert default_text() == guide[start:end] + "\n"


def test_bundled_default_loads_cleanly() -> None:
    config = load_default()
    assert config.version == 2
    assert [s.type for s in config.services.event_stores] == ["stdout"]
    assert [s.type for s in config.services.object_stores] == ["stdout"]
    capture = config.http_capture_for("httpbin.org")
    assert capture is not None and (capture.level, capture.format) == ("full", "json")
    assert config.tap is not None
    assert (config.tap.direction, config.tap.ignore_loopback, config.tap.audit_include_dns) == \
        ("egress", True, False)
    assert config.tap.http.span == M.Span(23, 5)
    assert config.stacks["capture_all"].span_of("plugins") == M.Span(13, 7)


def test_guide_errors_only_stack() -> None:
    text = (DATA / "guide" / "errors-only.yaml").read_text() + "tap:\n  http:\n    stack: error_only\n"
    config = clean(text)
    policy = CapturePolicy(config)
    assert policy.decide({"http": {"res": {"status": 503}}}).level == "full"
    assert policy.decide({"http": {"res": {"status": 404}}}).rule == "Capture errors"
    assert policy.decide({"http": {"res": {"status": 200}}}).level == "none"
    assert policy.decide({}).level == "none"  # missing field: the rule does not match


def test_guide_filter_by_domain_snippet_alone_names_its_undefined_stacks() -> None:
    _, problems = load((DATA / "guide" / "filter-by-domain.yaml").read_text(), "d.yaml")
    assert [(p.rule, p.line) for p in problems] == [
        (R.UNDEFINED_STACK, 3), (R.UNDEFINED_STACK, 8)]
    assert "lightweight_stack" in problems[0].message


def test_guide_filter_by_domain_with_its_stacks() -> None:
    text = (DATA / "guide" / "filter-by-domain.yaml").read_text() + """
stacks:
  lightweight_stack:
    plugins:
      - type: http_capture
        config: {level: summary}
  capture_all:
    plugins:
      - type: http_capture
        config: {level: full}
"""
    config = clean(text)
    assert config.http_stack_for("api.important.com").name == "capture_all"  # type: ignore
    assert config.http_stack_for("API.Important.com").name == "capture_all"  # type: ignore
    assert config.http_stack_for("other.com").name == "lightweight_stack"  # type: ignore
    policy = CapturePolicy(config)
    assert policy.decide({}, "api.important.com").level == "full"
    assert policy.decide({}, "example.org").level == "summary"


def test_guide_exclude_noisy_processes() -> None:
    config = clean((DATA / "guide" / "exclude-noisy.yaml").read_text())
    f = config.filters
    assert f.excludes("/usr/bin/healthcheck")
    assert f.excludes("/USR/BIN/HEALTHCHECK")  # non-regex strategies ignore case
    assert not f.excludes("/usr/bin/healthcheck2")
    assert f.excludes("/usr/sbin/nginx")
    assert not f.excludes("/usr/bin/curl")
    assert f.excludes("/usr/bin/curl", pid=os.getpid())  # the qpoint group: our own PID
    assert not f.excludes("/usr/bin/curl", pid=1, own_pid=2)


def test_filters_strategies_and_only_flags() -> None:
    config = clean("""
tap:
  filters:
    groups: [container-runtimes]
    custom:
      - {exe: worker, strategy: contains, only: [tls, http]}
      - {exe: "^/opt/app[0-9]+$", strategy: regex, only: [dns]}
      - {exe: -agent}
""")
    f = config.filters
    assert f.skip_flags("/srv/worker-1") == 4 | 8
    assert f.excludes("/srv/worker-1", layer="http") and f.excludes("/srv/worker-1", layer="tls")
    assert not f.excludes("/srv/worker-1", layer="data") and not f.excludes("/srv/worker-1")
    assert f.skip_flags("/opt/app12") == 2
    assert f.skip_flags("/OPT/app12") == 0  # regex is case-sensitive
    assert f.excludes("/usr/local/bin/ssm-AGENT")  # empty strategy means suffix
    assert f.excludes("/usr/bin/dockerd")
    assert not f.excludes("/usr/bin/dockerd-helper")


# --- the whole schema -----------------------------------------------------------------------

def test_full_schema_file_loads_cleanly_with_typed_values() -> None:
    config, problems = load_file(DATA / "good" / "full-schema.yaml")
    assert problems == [], [p.format() for p in problems]
    assert config is not None
    stores = config.services.event_stores
    assert [type(s).__name__ for s in stores] == [
        "EventStore", "AxiomEventStore", "OtelEventStore", "PulseEventStore", "EventStore"]
    otel = stores[2]
    assert isinstance(otel, M.OtelEventStore) and otel.tls is not None and otel.tls.enabled
    assert otel.headers["authorization"].resolve({"OTEL_API_TOKEN": "t0k"}) == "t0k"
    s3 = config.s3_object_store()
    assert s3 is not None and (s3.bucket, s3.endpoint, s3.region, s3.insecure) == \
        ("qtap-http-traffic", "minio:9000", "us-east-1", True)
    assert s3.endpoint_url == "http://minio:9000" and not s3.is_aws
    assert s3.access_key is not None and s3.access_key.env_name == "S3_ACCESS_KEY"
    assert s3.access_key.resolve({}) == ""
    assert s3.access_key.resolve({"S3_ACCESS_KEY": "AK"}) == "AK"
    assert config.services.qscan is not None and config.services.qscan.type == "client"
    stack = config.stacks["capture_all"]
    types = [p.type for p in stack.plugins]
    assert types == ["http_capture", "access_logs", "debug", "report_usage", "http_metrics"]
    capture = stack.http_capture
    assert capture is not None and capture.object_store is not None
    assert [r.level for r in capture.rules] == ["full", "headers", "summary"]
    assert [r.format for r in capture.rules] == ["text", None, None]
    access = stack.plugins[1].config
    assert isinstance(access, M.AccessLogConfig) and access.rules[0].mode == "full"
    assert isinstance(stack.plugins[3].config, M.ReportUsageConfig)
    assert isinstance(config.stacks["detect"].plugins[0].config, dict)
    assert config.tap is not None and config.tap.kafka.stack == "detect"
    assert not config.tap.redis.has_stack and not config.tap.mysql.has_stack
    assert [t.source for t in config.tags] == ["k8s.label", "env"]
    assert config.control is not None and config.control.rules[0].actions == ("deny",)
    assert list(config.macros) == ["is_2xx", "is_internal", "internal_ok"]


def test_capture_policy_on_full_schema() -> None:
    config, _ = load_file(DATA / "good" / "full-schema.yaml")
    assert config is not None
    policy = CapturePolicy(config)
    api = "api.example.com"
    err = {"http": {"res": {"status": 502}}}
    assert policy.decide(err, api) == policy.decide(err, api)
    assert (policy.decide(err, api).level, policy.decide(err, api).format) == ("full", "text")
    ok = {"http": {"res": {"status": 200}, "req": {"path": "/api/x"}},
          "dst": {"domain": "api.example.com", "ip": "10.0.0.9"}}
    assert policy.decide(ok, api).level == "headers"
    internal = {"http": {"res": {"status": 204}, "req": {"path": "/x"}},
                "dst": {"domain": "x.internal", "ip": "10.0.0.9"}}
    assert policy.decide(internal, api).level == "summary"
    assert policy.decide({"http": {"res": {"status": 200}}}, api).level == "full"
    assert policy.decide({}, "elsewhere.org").level == "summary"  # tap.http: lightweight


def test_version_is_accepted_whatever_it_is() -> None:
    for version in ("2", "1", "'two'", "[2]"):
        assert clean(f"version: {version}\n").tap is None


def test_legacy_details_is_read_as_headers() -> None:
    config, problems = load("""
stacks:
  s:
    plugins:
      - type: http_capture
        config: {level: details}
tap: {http: {stack: s}}
""", "l.yaml")
    assert rules_of(problems) == [R.LEGACY_LEVEL]
    assert problems[0].level is Level.WARNING
    assert config is not None and config.http_capture_for() is not None
    assert config.http_capture_for().level == "headers"  # type: ignore[union-attr]


def test_yaml11_scalars_in_string_fields_are_read_as_written() -> None:
    config = clean("tap:\n  http:\n    stack: off\nstacks:\n  'off': {}\n")
    assert config.tap is not None and config.tap.http.stack == "off"
    config = clean("tap: {http: {stack: 0x10}, redis: {stack: 2024-01-01}}\n"
                   "stacks: {'0x10': {}, '2024-01-01': {}}\n")
    assert config.tap is not None
    assert (config.tap.http.stack, config.tap.redis.stack) == ("0x10", "2024-01-01")


def test_unknown_keys_only_warn_and_the_config_is_still_returned() -> None:
    config, problems = load("proxy: {}\ntap:\n  audit_logs: true\n  direction: ingress\n", "u")
    assert config is not None and config.tap is not None and config.tap.direction == "ingress"
    assert [(p.rule, p.level, p.line) for p in problems] == [
        (R.UNKNOWN_KEY, Level.WARNING, 1), (R.UNKNOWN_KEY, Level.WARNING, 3)]


def test_all_problems_are_reported_at_once_and_sorted() -> None:
    _, problems = load_file(DATA / "bad" / "multiple.yaml")
    assert len(problems) >= 4
    assert problems == sorted(problems, key=Problem.sort_key)


def test_every_reported_rule_id_is_declared() -> None:
    for path in sorted((DATA / "bad").glob("*.yaml")):
        _, problems = load_file(path)
        for p in problems:
            assert p.rule in RULES or p.rule.startswith("yaml-"), (path.name, p.rule)
    for rule_id in R.RULE_IDS:
        assert RULES[rule_id].scope == "qtap" and RULES[rule_id].doc


def test_unreadable_file_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    config, problems = load_file(tmp_path / "missing.yaml")
    assert config is None and rules_of(problems) == [R.READ]
    (tmp_path / "latin1.yaml").write_bytes(b"tap: {direction: \xff}\n")
    config, problems = load_file(tmp_path / "latin1.yaml")
    assert config is None and rules_of(problems) == [R.READ]


@pytest.mark.parametrize("text", ["", "# only a comment\n", "42\n", "[1, 2]\n", "null\n"])
def test_documents_that_are_not_configs(text: str) -> None:
    config, problems = load(text, "n.yaml")
    assert config is None
    assert rules_of(problems) == [R.NOT_A_CONFIG]


def test_s3_defaults_are_aws() -> None:
    config = clean("services:\n  object_stores:\n    - {type: s3, bucket: b}\n")
    s3 = config.s3_object_store()
    assert s3 is not None and s3.is_aws and s3.region == "us-east-1"
    assert s3.endpoint_url == "https://s3.amazonaws.com"
    assert s3.access_key is None and s3.secret_key is None  # IAM: no keys in the file
    assert config.default_object_store is s3 and config.default_event_store is None


def test_text_value_source_has_no_env_name() -> None:
    config, problems = load(
        "services:\n  event_stores:\n    - {type: axiom, dataset: {type: text, value: d}}\n",
        "v.yaml")
    assert problems == []  # a dataset name is not a secret
    store = config.services.event_stores[0] if config else None
    assert isinstance(store, M.AxiomEventStore) and store.dataset is not None
    assert store.dataset.env_name is None and store.dataset.resolve({}) == "d"


def test_messages_say_what_and_where() -> None:
    _, problems = load("""tap:
  directon: all
  http: {stack: capture}
  filters:
    groups: [container]
stacks:
  capture_all: {}
  other: {}
""", "m.yaml")
    by_rule = {p.rule: p for p in problems}
    assert "did you mean 'direction'?" in by_rule[R.UNKNOWN_KEY].message
    undefined = by_rule[R.UNDEFINED_STACK]
    assert (undefined.line, undefined.col) == (3, 17)
    assert "'capture'" in undefined.message and "capture_all, other" in undefined.message
    group = by_rule[R.FILTER_GROUP].message
    assert "container-runtimes, eks, gke, kubernetes, qpoint" in group
    assert "did you mean 'container-runtimes'?" in group
    assert all(p.format().startswith(f"m.yaml:{p.line}:{p.col}: ") for p in problems)


def test_plugin_configs_are_typed_or_plain_never_raw_yaml_nodes() -> None:
    config, problems = load("""
stacks:
  s:
    plugins:
      - {type: http_capture, config: {level: [full]}}
      - {type: http_metrics, config: {x: 1}}
      - {type: llm, config: {model: m, opts: [1, {a: b}]}}
""", "p.yaml")
    assert config is not None and rules_of(problems) == [R.TYPE, R.UNKNOWN_KEY]
    capture, metrics, llm = (p.config for p in config.stacks["s"].plugins)
    assert isinstance(capture, M.HttpCaptureConfig) and capture.level == "none"
    assert metrics is None
    assert llm == {"model": "m", "opts": [1, {"a": "b"}]} and type(llm) is dict
