"""``qtap-fluent gen``: files written, deterministic, consistent, and bad input refused."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest
import yaml

from qtap_fluent.cli.main import main
from qtap_fluent.gen import files as gf
from qtap_fluent.gen.spec import OUTPUT_KINDS

COMBOS = [list(c) for n in range(1, len(OUTPUT_KINDS) + 1)
          for c in itertools.combinations(OUTPUT_KINDS, n)]


def gen(tmp_path: Path, *args: str, out: str = "deploy") -> tuple[int, Path]:
    target = tmp_path / out
    return main(["gen", "--out", str(target), *args]), target


def outputs_args(kinds: list[str]) -> list[str]:
    args = [a for k in kinds for a in ("--output", k)]
    if "s3" in kinds:
        args += ["--bucket", "my-bucket"]
    return args


def test_default_writes_the_guides_stdout_deployment(tmp_path: Path) -> None:
    rc, out = gen(tmp_path)
    assert rc == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([gf.FB_CONF, gf.FB_YAML, gf.PARSERS_CONF, gf.PARSERS_YAML,
                            gf.QTAP_CONFIG, gf.COMPOSE, gf.DEPLOY, gf.MANIFEST])
    conf = (out / gf.FB_CONF).read_text()
    for line in ("Name         forward", "Key_Name     log", "Parser       generic_json_parser",
                 "Reserve_Data On", "Preserve_Key Off", "Regex source stdout",
                 "Format json_lines"):
        assert line.split()[0] in conf and line.split()[-1] in conf
    assert "[PARSER]" in (out / gf.PARSERS_CONF).read_text()
    qtap = yaml.safe_load((out / gf.QTAP_CONFIG).read_text())
    assert qtap["services"]["object_stores"] == [{"type": "stdout"}]
    assert qtap["services"]["event_stores"] == [{"type": "stdout"}]
    assert qtap["stacks"]["capture_all"]["plugins"][0]["config"]["level"] == "full"
    assert qtap["tap"]["direction"] == "egress"


def test_cwd_default_out_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["gen"]) == 0
    assert (tmp_path / "qtap-fluent-deploy" / gf.FB_YAML).is_file()


def test_output_is_deterministic(tmp_path: Path) -> None:
    args = [*outputs_args(["s3", "cloudwatch", "stdout"]), "--include-domain", "api.x.com",
            "--exclude-url", "/health$", "--errors-only"]
    _, a = gen(tmp_path, *args, out="a")
    _, b = gen(tmp_path, *args, out="b")
    for f in a.iterdir():
        assert f.read_bytes() == (b / f.name).read_bytes(), f.name


def test_compose_matches_the_forward_input(tmp_path: Path) -> None:
    rc, out = gen(tmp_path, "--port", "24299", "--tag", "docker.http")
    assert rc == 0
    compose = yaml.safe_load((out / gf.COMPOSE).read_text())
    logging = compose["services"]["qtap"]["logging"]
    assert logging["driver"] == "fluentd"
    assert logging["options"]["fluentd-address"] == "127.0.0.1:24299"
    assert logging["options"]["tag"] == "docker.http"
    fb = yaml.safe_load((out / gf.FB_YAML).read_text())
    assert fb["pipeline"]["inputs"][0]["port"] == "24299" or fb["pipeline"]["inputs"][0][
        "port"] == 24299
    assert all(f["match"] == "docker.http" for f in fb["pipeline"]["filters"])
    qtap = compose["services"]["qtap"]
    assert qtap["privileged"] is True and qtap["pid"] == "host"
    assert "/sys:/sys" in qtap["volumes"]
    mounted = [v.split(":")[0] for v in compose["services"]["fluent-bit"]["volumes"]]
    for host in mounted:
        if host.startswith("./"):
            assert (out / host[2:]).is_file(), host


@pytest.mark.parametrize("kinds", COMBOS, ids=["+".join(c) for c in COMBOS])
def test_every_output_combination_renders_both_formats_alike(tmp_path: Path,
                                                              kinds: list[str]) -> None:
    rc, out = gen(tmp_path, *outputs_args(kinds))
    assert rc == 0
    fb = yaml.safe_load((out / gf.FB_YAML).read_text())
    names = [o["name"] for o in fb["pipeline"]["outputs"]]
    expect = {"stdout": "stdout", "s3": "s3", "minio": "s3", "cloudwatch": "cloudwatch_logs",
              "serve": "forward"}
    assert names == [expect[k] for k in kinds]
    classic = (out / gf.FB_CONF).read_text()
    assert classic.count("[OUTPUT]") == len(kinds)
    compose = yaml.safe_load((out / gf.COMPOSE).read_text())
    assert ("minio" in compose["services"]) == ("minio" in kinds)
    assert (out / gf.LIFECYCLE).exists() == ("s3" in kinds)
    assert ("serve" in compose["services"]) == ("serve" in kinds)
    if "serve" in kinds:
        from qtap_fluent.serve.config import check

        assert check((out / gf.SERVE_YAML).read_text(), "serve.yaml") == []


def test_s3_options_follow_the_guide_and_lifecycle(tmp_path: Path) -> None:
    rc, out = gen(tmp_path, "--output", "s3", "--bucket", "audit-bucket", "--region",
                  "eu-west-1", "--retention-days", "30")
    assert rc == 0
    fb = yaml.safe_load((out / gf.FB_YAML).read_text())
    s3 = fb["pipeline"]["outputs"][0]
    assert s3["bucket"] == "audit-bucket" and s3["region"] == "eu-west-1"
    assert s3["compression"] == "gzip" and "$UUID" in s3["s3_key_format"]
    assert s3["s3_key_format"].startswith("/")
    policy = json.loads((out / gf.LIFECYCLE).read_text())
    assert policy["Rules"][0]["Expiration"] == {"Days": 30}
    assert "put-bucket-lifecycle-configuration --bucket audit-bucket" in (
        out / gf.DEPLOY).read_text()


def test_cloudwatch_retention_is_in_the_output(tmp_path: Path) -> None:
    rc, out = gen(tmp_path, "--output", "cloudwatch", "--log-group", "/team/http",
                  "--retention-days", "30")
    assert rc == 0
    cw = yaml.safe_load((out / gf.FB_YAML).read_text())["pipeline"]["outputs"][0]
    assert cw["log_group_name"] == "/team/http"
    assert str(cw["log_retention_days"]) == "30"
    assert "log_stream_prefix" in cw and "log_stream_name" not in cw


def test_cloudwatch_rejects_a_retention_it_does_not_offer(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    rc, out = gen(tmp_path, "--output", "cloudwatch", "--retention-days", "31")
    assert rc == 1
    assert "--retention-days" in capsys.readouterr().err
    assert not out.exists()


def test_s3_store_in_qtap_yaml_supplies_bucket_and_credential_sources(tmp_path: Path) -> None:
    src = tmp_path / "qtap.yaml"
    src.write_text(
        "version: 2\n"
        "services:\n"
        "  event_stores:\n    - type: stdout\n"
        "  object_stores:\n"
        "    - id: minio\n      type: s3\n      endpoint: minio.internal:9000\n"
        "      bucket: traffic\n      region: eu-central-1\n      insecure: true\n"
        "      access_key: {type: env, value: S3_KEY}\n"
        "      secret_key: {type: env, value: S3_SECRET}\n"
        "stacks:\n  s:\n    plugins:\n      - type: http_capture\n"
        "        config: {level: full, format: json}\n"
        "tap:\n  direction: all\n  http: {stack: s}\n")
    rc, out = gen(tmp_path, str(src))
    assert rc == 0
    s3 = yaml.safe_load((out / gf.FB_YAML).read_text())["pipeline"]["outputs"][0]
    assert (s3["name"], s3["bucket"], s3["region"]) == ("s3", "traffic", "eu-central-1")
    assert s3["endpoint"] == "http://minio.internal:9000"
    env = yaml.safe_load((out / gf.COMPOSE).read_text())["services"]["fluent-bit"]["environment"]
    assert "AWS_ACCESS_KEY_ID=${S3_KEY}" in env
    assert "AWS_SECRET_ACCESS_KEY=${S3_SECRET}" in env
    qtap = yaml.safe_load((out / gf.QTAP_CONFIG).read_text())
    assert qtap["services"]["object_stores"] == [{"id": "minio", "type": "stdout"}]


def test_clear_text_secrets_are_never_copied(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "qtap.yaml"
    src.write_text(
        "services:\n  object_stores:\n    - type: s3\n      bucket: traffic\n"
        "      access_key: {type: text, value: AKIAIOSFODNN7EXAMPLE}\n"
        "      secret_key: {type: text, value: wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY}\n"
        "tap:\n  direction: egress\n")
    rc, out = gen(tmp_path, str(src))
    assert rc == 0
    assert "type: text" in capsys.readouterr().err
    for f in out.iterdir():
        text = f.read_text()
        assert "AKIAIOSFODNN7EXAMPLE" not in text and "wJalrXUtnFEMI" not in text, f.name


def test_errors_only_rewrites_the_capture_rule(tmp_path: Path) -> None:
    rc, out = gen(tmp_path, "--errors-only")
    assert rc == 0
    qtap = yaml.safe_load((out / gf.QTAP_CONFIG).read_text())
    config = qtap["stacks"]["capture_all"]["plugins"][0]["config"]
    assert config["level"] == "none"
    assert config["rules"] == [{"name": "Capture errors", "expr": "http.res.status >= 400",
                                "level": "full"}]
    from qtap_fluent.qtap.config import load

    _, problems = load((out / gf.QTAP_CONFIG).read_text(), "qtap-config.yaml")
    assert [p for p in problems if p.level >= 3] == []


def test_domain_and_url_filters_match_nested_url(tmp_path: Path) -> None:
    rc, out = gen(tmp_path, "--include-domain", "api.important.com", "--include-domain",
                  "*.corp.example", "--exclude-url", "/health$", "--exclude-url", "/ready$")
    assert rc == 0
    filters = yaml.safe_load((out / gf.FB_YAML).read_text())["pipeline"]["filters"]
    keep = next(f for f in filters if "regex" in f and "request" in f["regex"])["regex"]
    drop = next(f for f in filters if "exclude" in f)["exclude"]
    key, _, keep_re = keep.partition(" ")
    assert key == "$request['url']"
    assert drop.startswith("$request['url'] ")
    drop_re = drop.partition(" ")[2]
    import onigurumacffi

    keep_rx = onigurumacffi.compile(keep_re)
    for url, hit in [("https://api.important.com/v1", True), ("http://api.important.com", True),
                     ("https://api.important.com:8443/x", True),
                     ("https://a.b.corp.example/x", True), ("https://corp.example/", False),
                     ("https://api.important.com.evil.net/", False),
                     ("https://evil.net/?u=https://api.important.com/", False)]:
        assert (keep_rx.search(url) is not None) == hit, url
    drop_rx = onigurumacffi.compile(drop_re)
    assert drop_rx.search("http://svc/health") and drop_rx.search("http://svc/ready")
    assert not drop_rx.search("http://svc/healthz")


def test_check_reports_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = gen(tmp_path)
    assert rc == 0
    assert main(["gen", "--out", str(out), "--check"]) == 0
    conf = out / gf.FB_CONF
    conf.write_text(conf.read_text().replace("Flush        5", "Flush        1"))
    capsys.readouterr()
    assert main(["gen", "--out", str(out), "--check"]) == 1
    diff = capsys.readouterr().out
    assert "-    Flush        1" in diff and "+    Flush        5" in diff
    assert "Flush        1" in conf.read_text()  # --check wrote nothing


def test_check_on_missing_folder_fails_without_creating_it(tmp_path: Path) -> None:
    rc, out = gen(tmp_path, "--check")
    assert rc == 1
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (["--output", "kafka"], "unknown output kind"),
    (["--output", "s3"], "needs a bucket"),
    (["--output", "s3", "--bucket", "Bad_Bucket"], "not a valid S3 bucket name"),
    (["--exclude-url", "(unclosed"], "does not compile"),
    (["--include-domain", "not a domain"], "not a domain name"),
    (["--drop-status", "600-100"], "600-100"),
    (["--drop-status", "abc"], "abc"),
])
def test_bad_options_exit_nonzero_and_write_nothing(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str],
                                                    args: list[str], message: str) -> None:
    rc, out = gen(tmp_path, *args)
    assert rc in (1, 2)
    assert message in capsys.readouterr().err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_broken_qtap_yaml_is_reported_with_position(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "broken.yaml"
    src.write_text("tap:\n  direction: sideways\n  http:\n    stack: missing\n")
    rc = main(["gen", str(src), "--out", str(tmp_path / "out")])
    assert rc == 1
    err = capsys.readouterr().err
    assert re.search(r"broken\.yaml:2:\d+: (error|warning): .*sideways", err), err
    assert re.search(r"broken\.yaml:4:\d+: error: .*missing", err), err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_unreadable_qtap_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["gen", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "out")])
    assert rc == 1
    assert "cannot read" in capsys.readouterr().err


def test_regenerating_over_an_existing_folder_replaces_files(tmp_path: Path) -> None:
    rc, out = gen(tmp_path)
    assert rc == 0
    rc, out = gen(tmp_path, "--output", "cloudwatch")
    assert rc == 0
    assert "cloudwatch_logs" in (out / gf.FB_CONF).read_text()
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_rerun_removes_files_gen_no_longer_writes(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = gen(tmp_path, "--output", "s3", "--bucket", "b-1", "--redact", "--enrich")
    assert rc == 0 and (out / gf.LIFECYCLE).exists() and (out / "qtap_redact.lua").exists()
    (out / "qtap_enrich.lua").write_text("-- my own edits\n")
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    rc, out = gen(tmp_path, "--output", "stdout")
    assert rc == 0
    assert not (out / gf.LIFECYCLE).exists() and not (out / "qtap_redact.lua").exists()
    assert (out / "qtap_enrich.lua").read_text() == "-- my own edits\n"  # edited: kept
    assert "qtap_enrich.lua" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"  # never ours: untouched
    assert main(["gen", "--out", str(out), "--output", "stdout", "--check"]) == 0


def test_check_reports_a_file_that_would_be_removed(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = gen(tmp_path, "--output", "s3", "--bucket", "b-1")
    assert rc == 0
    capsys.readouterr()
    assert main(["gen", "--out", str(out), "--output", "stdout", "--check"]) == 1
    assert f"--- {out / gf.LIFECYCLE}" in capsys.readouterr().out
    assert (out / gf.LIFECYCLE).exists()
