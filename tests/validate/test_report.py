"""Reporters are pure functions of the problems: exact text for each format."""

from __future__ import annotations

import json

from qtap_fluent.cli import report
from qtap_fluent.problems import Level, Problem
from qtap_fluent.validate.registry import RuleInfo

P = [
    Problem(path="a/fluent-bit.conf", line=3, col=5, level=Level.ERROR, rule="fb-port",
            message="port 'x' is not a number"),
    Problem(path="a/q,1:x.yaml", line=7, col=1, level=Level.INFO, rule="security-x",
            message="100% sure\nsecond line"),
]
RULES = {"fb-port": RuleInfo(id="fb-port", level=Level.ERROR, scope="fluentbit", doc="ports")}


def test_text() -> None:
    assert report.render("text", P, RULES, 2) == (
        "a/fluent-bit.conf:3:5: error: port 'x' is not a number [fb-port]\n"
        "a/q,1:x.yaml:7:1: info: 100% sure\nsecond line [security-x]\n"
        "2 file(s) checked: 1 error(s), 0 warning(s), 1 info\n")


def test_github_escapes_properties_and_data() -> None:
    lines = report.render("github", P, RULES, 2).splitlines()
    assert lines[0] == ("::error file=a/fluent-bit.conf,line=3,col=5,title=fb-port::"
                        "port 'x' is not a number")
    assert lines[1] == ("::notice file=a/q%2C1%3Ax.yaml,line=7,col=1,title=security-x::"
                        "100%25 sure%0Asecond line")


def test_json_and_sarif_agree_on_counts() -> None:
    doc = json.loads(report.render("json", P, RULES, 2))
    assert doc["summary"] == {"files": 2, "errors": 1, "warnings": 0, "info": 1}
    sarif = json.loads(report.render("sarif", P, RULES, 2))
    results = sarif["runs"][0]["results"]
    assert [r["level"] for r in results] == ["error", "note"]
    # A rule id the registry does not know still gets a driver entry for its index.
    rules = sarif["runs"][0]["tool"]["driver"]["rules"]
    assert rules[results[1]["ruleIndex"]] == {"id": "security-x"}
    assert results[1]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == \
        "a/q%2C1%3Ax.yaml"


def test_list_rules_table() -> None:
    assert report.render_rules(RULES.values()) == "fb-port  error    fluentbit  ports\n"


def test_sarif_absolute_paths_are_file_uris() -> None:
    p = Problem(path="/srv/deploy/fluent bit.conf", line=1, col=1, level=Level.WARNING,
                rule="fb-port", message="m")
    sarif = json.loads(report.render("sarif", [p], RULES, 1))
    loc = sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"] == "file:///srv/deploy/fluent%20bit.conf"
