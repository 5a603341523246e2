"""The compose, cross-file and security rules on small deployments built in tmp folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from validate_helpers import VALID, available_rules

from qtap_fluent.problems import Problem
from qtap_fluent.validate import engine

GUIDE = VALID / "guide-stdout"


def deploy(tmp_path: Path, **files: str) -> list[Problem]:
    """Write the guide's deployment with ``files`` replaced (``name=text``); validate it."""
    for src in GUIDE.iterdir():
        if src.name != "expect.txt":
            (tmp_path / src.name).write_text(src.read_text())
    for name, text in files.items():
        (tmp_path / name.replace("_", "-").replace("-yaml", ".yaml").replace("-conf", ".conf")
         ).write_text(text)
    return list(engine.run([str(tmp_path)], available_rules()).problems)


def rules_at(problems: list[Problem], rule: str) -> list[tuple[str, int]]:
    return [(Path(p.path).name, p.line) for p in problems if p.rule == rule]


def compose(**replace: str) -> str:
    text = (GUIDE / "docker-compose.yaml").read_text()
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    return text


def conf(old: str, new: str) -> str:
    text = (GUIDE / "fluent-bit.conf").read_text()
    assert old in text
    return text.replace(old, new)


def test_guide_has_no_cross_problems(tmp_path: Path) -> None:
    problems = deploy(tmp_path)
    assert not [p for p in problems if p.rule.startswith(("cross-", "compose-"))]


def test_published_port_is_accepted(tmp_path: Path) -> None:
    # Without host networking the daemon reaches Fluent Bit through the published port.
    text = compose(**{"    network_mode: host\n    volumes:\n      - ./fluent-bit.conf":
                      "    ports:\n      - \"24225:24224\"\n    volumes:\n"
                      "      - ./fluent-bit.conf",
                      "fluentd-address: 127.0.0.1:24224": "fluentd-address: 127.0.0.1:24225"})
    assert rules_at(deploy(tmp_path, docker_compose_yaml=text), "cross-forward-port") == []
    text = text.replace("fluentd-address: 127.0.0.1:24225", "fluentd-address: 127.0.0.1:24226")
    assert rules_at(deploy(tmp_path, docker_compose_yaml=text),
                    "cross-forward-port") == [("docker-compose.yaml", 37)]


def test_default_fluentd_address_is_24224(tmp_path: Path) -> None:
    text = compose(**{"        fluentd-address: 127.0.0.1:24224\n": ""})
    assert rules_at(deploy(tmp_path, docker_compose_yaml=text), "cross-forward-port") == []
    problems = deploy(tmp_path, docker_compose_yaml=text,
                      fluent_bit_conf=conf("Port        24224", "Port        24300"))
    assert rules_at(problems, "cross-forward-port") == [("docker-compose.yaml", 32)]


def test_tag_prefix_changes_routing(tmp_path: Path) -> None:
    problems = deploy(tmp_path, fluent_bit_conf=conf("    Port        24224\n",
                                                     "    Port        24224\n"
                                                     "    Tag_Prefix  in.\n"))
    assert rules_at(problems, "cross-log-tag-unrouted") == [("docker-compose.yaml", 35)]
    assert "in.docker.qtap" in next(p.message for p in problems
                                    if p.rule == "cross-log-tag-unrouted")


def test_wildcard_output_routes_everything(tmp_path: Path) -> None:
    text = compose(**{"tag: docker.qtap": "tag: qtap.http"})
    fb = conf("    Name         stdout\n    Match        docker.qtap",
              "    Name         stdout\n    Match        *")
    assert rules_at(deploy(tmp_path, docker_compose_yaml=text, fluent_bit_conf=fb),
                    "cross-log-tag-unrouted") == []


def test_templated_tag_is_not_judged(tmp_path: Path) -> None:
    text = compose(**{"tag: docker.qtap": "tag: \"{{.Name}}\""})
    assert rules_at(deploy(tmp_path, docker_compose_yaml=text), "cross-log-tag-unrouted") == []


def test_config_not_mounted_without_command(tmp_path: Path) -> None:
    text = compose(**{"      - ./fluent-bit.conf:/fluent-bit/etc/fluent-bit.conf\n": "",
                      '    command: ["fluent-bit", "-c", "/fluent-bit/etc/fluent-bit.conf"]\n':
                      ""})
    problems = deploy(tmp_path, docker_compose_yaml=text)
    hits = [p for p in problems if p.rule == "cross-config-not-mounted"]
    assert [(Path(p.path).name, p.line, str(p.level)) for p in hits] == [
        ("docker-compose.yaml", 4, "warning")]


def test_compose_schema_points_at_the_key(tmp_path: Path) -> None:
    text = compose(**{"    privileged: true\n": "    privileged: true\n    restart_policy: x\n"})
    problems = deploy(tmp_path, docker_compose_yaml=text)
    hits = [p for p in problems if p.rule == "compose-schema"]
    assert [(p.line, p.col) for p in hits] == [(19, 5)]
    assert "restart_policy" in hits[0].message and "services.qtap" in hits[0].message


def test_compose_schema_type_error_points_at_value(tmp_path: Path) -> None:
    text = compose(**{"      memlock: -1": "      memlock: [1, 2]"})
    hits = [p for p in deploy(tmp_path, docker_compose_yaml=text) if p.rule == "compose-schema"]
    assert hits and {p.line for p in hits} == {31}


@pytest.mark.parametrize(("line", "flagged"), [
    ("AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPL3", True),
    ("key: ASIAIOSFODNN7EXAMPL3", True),
    ("AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID}", False),
    ("id: XAKIAIOSFODNN7EXAMPL3", False),  # part of a longer token
    ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", True),
    ("aws_secret_access_key: \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\"", True),
    ("AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY}", False),
    ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEYX", False),  # 41 chars
])
def test_aws_key_patterns(tmp_path: Path, line: str, flagged: bool) -> None:
    text = compose(**{"      - TINI_SUBREAPER=1\n": f"      - TINI_SUBREAPER=1\n      # {line}\n"})
    hits = rules_at(deploy(tmp_path, docker_compose_yaml=text), "security-aws-key")
    assert hits == ([("docker-compose.yaml", 30)] if flagged else [])


def test_forward_with_shared_key_or_tls_is_not_exposed(tmp_path: Path) -> None:
    for extra in ("    Shared_Key  s3cr3t\n", "    tls         on\n"):
        fb = conf("    Port        24224\n", "    Port        24224\n" + extra)
        assert rules_at(deploy(tmp_path, fluent_bit_conf=fb), "security-forward-exposed") == []
    for listen in ("127.0.0.1", "::1", "localhost", "127.0.0.53"):
        fb = conf("Listen      0.0.0.0", f"Listen      {listen}")
        assert rules_at(deploy(tmp_path, fluent_bit_conf=fb), "security-forward-exposed") == []


def test_redact_filter_silences_full_capture(tmp_path: Path) -> None:
    (tmp_path / "qtap_redact.lua").write_text(
        "function redact(tag, ts, record)\n  return 1, ts, record\nend\n")
    fb = conf("# Output", "[FILTER]\n    Name    lua\n    Match   docker.qtap\n"
                          "    Script  qtap_redact.lua\n    Call    redact\n\n# Output")
    assert rules_at(deploy(tmp_path, fluent_bit_conf=fb), "security-unredacted-capture") == []
    plain = (GUIDE / "fluent-bit.conf").read_text()
    assert rules_at(deploy(tmp_path, fluent_bit_conf=plain),
                    "security-unredacted-capture") == [("qtap-config.yaml", 15)]


def test_agent_redacting_at_source_silences_full_capture(tmp_path: Path) -> None:
    agent = ("  agent:\n    image: qtap-fluent:dev\n    command: [qtap-fluent, agent, --config,"
             " /etc/qtap.yaml]\n")
    text = compose(**{"services:\n": "services:\n" + agent})
    assert rules_at(deploy(tmp_path, docker_compose_yaml=text),
                    "security-unredacted-capture") == []
    text = text.replace("/etc/qtap.yaml]", "/etc/qtap.yaml, --no-redact]")
    assert rules_at(deploy(tmp_path, docker_compose_yaml=text),
                    "security-unredacted-capture") == [("qtap-config.yaml", 15)]


def test_two_deployments_in_one_run_stay_apart(tmp_path: Path) -> None:
    import shutil

    shutil.copytree(GUIDE, tmp_path / "prod")
    shutil.copytree(GUIDE, tmp_path / "staging")
    staging = tmp_path / "staging" / "fluent-bit.conf"
    staging.write_text(staging.read_text().replace("Port        24224", "Port        24300"))
    prod = tmp_path / "prod" / "fluent-bit.conf"
    prod.write_text(prod.read_text().replace(
        "# Output", "[FILTER]\n    Name    lua\n    Match   docker.qtap\n"
                    "    Script  redact.lua\n    Call    redact\n\n# Output"))
    (tmp_path / "prod" / "redact.lua").write_text(
        "function redact(tag, ts, record)\n  return 1, ts, record\nend\n")
    problems = list(engine.run([str(tmp_path)], available_rules()).problems)
    where = {(Path(p.path).parent.name, p.rule) for p in problems}
    assert ("staging", "cross-forward-port") in where
    assert ("prod", "cross-forward-port") not in where
    assert ("staging", "security-unredacted-capture") in where
    assert ("prod", "security-unredacted-capture") not in where


def test_env_file_secrets_are_found(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPL3\n")
    assert rules_at(deploy(tmp_path), "security-aws-key") == [(".env", 1)]


def test_compose_configs_count_as_mounts(tmp_path: Path) -> None:
    text = compose(**{
        "    volumes:\n      - ./fluent-bit.conf:/fluent-bit/etc/fluent-bit.conf\n"
        "      - ./parsers.conf:/fluent-bit/etc/parsers.conf\n":
        "    configs:\n      - source: fb_main\n        target: /fluent-bit/etc/fluent-bit.conf\n"
        "      - source: fb_parsers\n        target: /fluent-bit/etc/parsers.conf\n"})
    text += "configs:\n  fb_main:\n    file: ./fluent-bit.conf\n  fb_parsers:\n    file: parsers.conf\n"
    problems = deploy(tmp_path, docker_compose_yaml=text)
    assert not [p for p in problems if p.rule.startswith(("cross-", "compose-", "fb-parser"))], \
        [p.format() for p in problems]
    text = text.replace("file: parsers.conf", "file: parsers-missing.conf")
    problems = deploy(tmp_path, docker_compose_yaml=text)
    assert ("fluent-bit.conf", 5) in rules_at(problems, "fb-parsers-file")
    assert rules_at(problems, "cross-mount-missing") == [("docker-compose.yaml", 11)]
