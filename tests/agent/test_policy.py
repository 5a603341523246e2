"""The Qtap YAML policy applied to real exchanges: levels, directions, filters, endpoints, rules."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qtap_fluent.agent.policy import Policy
from qtap_fluent.agent.qtapconfig import load_policy
from qtap_fluent.errors import ConfigError
from qtap_fluent.redact import Redactor
from tests.agent import golden

MS = 1_000_000


def policy(tmp_path: Path, text: str, **kw: Any) -> Policy:
    path = tmp_path / "qtap.yaml"
    path.write_text(text)
    pol, _ = load_policy(path, **kw)
    return pol


def exchange_case(*, host: str = "api.example.com", path: str = "/v1/items?token=abc",
                  status: int = 200, origin: str = "connect", remote: str = "93.184.216.34:443",
                  exe: str = "/usr/bin/curl", pid: int = 50, tls: bool = False,
                  body: str = '{"password":"hunter2","n":1}') -> dict[str, Any]:
    out, inn = ("out", "in") if origin == "connect" else ("in", "out")
    return {"origin": origin, "local": "10.0.0.5:40000", "remote": remote, "pid": pid, "exe": exe, "tls": tls,
                "events": [
                    {"t": 0, "dir": out, "data": f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
                         f"Authorization: Bearer s3cr3t\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n{body}"},
                    {"t": 5 * MS, "dir": inn, "data": f"HTTP/1.1 {status} X\r\nContent-Type: text/plain"
                         f"\r\nSet-Cookie: sid=1\r\nContent-Length: 2\r\n\r\nok"},
                    {"t": 6 * MS, "dir": "close"}]}


def records(pol: Policy, case: dict[str, Any]) -> list[dict[str, Any]]:
    _runner, out = golden.run_case(case, pol)
    return [r.to_dict() for r in out.records]


def stack(level: str, fmt: str = "json", rules: str = "") -> str:
    return f"""
stacks:
  s:
    plugins:
      - type: http_capture
        config:
          level: {level}
          format: {fmt}
{rules}
tap:
  direction: all
  http:
    stack: s
"""


# -- levels (qtap.md §3.2) ---------------------------------------------------------------------

def test_level_none_emits_nothing_and_counts_it(tmp_path: Path) -> None:
    pol = policy(tmp_path, stack("none"))
    runner, out = golden.run_case(exchange_case(), pol)
    assert out.records == [] and runner.counters.dropped_by_policy == 1


def test_level_summary_clears_headers_and_bodies(tmp_path: Path) -> None:
    [rec] = records(policy(tmp_path, stack("summary")), exchange_case())
    assert "headers" not in rec["request"] and "body" not in rec["request"]
    assert "headers" not in rec["response"] and "body" not in rec["response"]
    assert rec["request"]["content_type"] == "application/json"
    assert rec["response"]["status"] == 200 and rec["request"]["url"].startswith("http://api.")
    assert rec["metadata"]["process_id"] == "50"


@pytest.mark.parametrize("level", ["headers", "details"])
def test_level_headers_keeps_headers_not_bodies(tmp_path: Path, level: str) -> None:
    [rec] = records(policy(tmp_path, stack(level)), exchange_case())
    assert rec["request"]["headers"]["Content-Type"] == "application/json"
    assert rec["response"]["headers"][":status"] == "200"
    assert "body" not in rec["request"] and "body" not in rec["response"]


def test_level_full_keeps_bodies_base64(tmp_path: Path) -> None:
    [rec] = records(policy(tmp_path, stack("full")), exchange_case(body='{"n":1}'))
    assert base64.b64decode(rec["request"]["body"]) == b'{"n":1}'
    assert base64.b64decode(rec["response"]["body"]) == b"ok"


def test_format_text(tmp_path: Path) -> None:
    pol = policy(tmp_path, stack("headers", "text"))
    _, out = golden.run_case(exchange_case(), pol)
    assert out.lines[0].startswith("HTTP Transaction\n================\n")
    assert "  Status: 200\n" in out.lines[0]


# -- redaction at source -----------------------------------------------------------------------

def test_redaction_default_list(tmp_path: Path) -> None:
    [rec] = records(policy(tmp_path, stack("full"), redactor=Redactor()), exchange_case())
    assert rec["request"]["headers"]["Authorization"] == "[REDACTED]"
    assert rec["response"]["headers"]["Set-Cookie"] == "[REDACTED]"
    assert rec["request"]["url"].endswith("?token=[REDACTED]")
    body = json.loads(base64.b64decode(rec["request"]["body"]))
    assert body == {"password": "[REDACTED]", "n": 1}


def test_no_redactor_keeps_values(tmp_path: Path) -> None:
    [rec] = records(policy(tmp_path, stack("full")), exchange_case())
    assert rec["request"]["headers"]["Authorization"] == "Bearer s3cr3t"


# -- direction and loopback (qtap.md §1.4, §4.1) -----------------------------------------------

CASES_BY_DIRECTION: dict[str, dict[str, Any]] = {
    "egress-external": {"origin": "connect", "remote": "93.184.216.34:80"},
    "egress-internal": {"origin": "connect", "remote": "10.20.0.7:80"},
    "ingress": {"origin": "accept", "remote": "10.20.0.7:51000"},
}
ALLOWED = {
    "all": {"egress-external", "egress-internal", "ingress"},
    "egress": {"egress-external", "egress-internal"},
    "egress-external": {"egress-external"},
    "egress-internal": {"egress-internal"},
    "ingress": {"ingress"},
}


@pytest.mark.parametrize("direction", sorted(ALLOWED))
def test_tap_direction(tmp_path: Path, direction: str) -> None:
    pol = policy(tmp_path, stack("summary").replace("direction: all", f"direction: {direction}"))
    seen = set()
    for name, kw in CASES_BY_DIRECTION.items():
        recs = records(pol, exchange_case(**kw))
        if recs:
            assert recs[0]["direction"] == name
            seen.add(name)
    assert seen == ALLOWED[direction]


@pytest.mark.parametrize("remote,kept", [("127.0.0.1:8080", False), ("169.254.169.254:80", False),
                                         ("[::1]:8080", False), ("10.0.0.9:80", True)])
def test_ignore_loopback(tmp_path: Path, remote: str, kept: bool) -> None:
    text = stack("summary").replace("direction: all", "direction: all\n  ignore_loopback: true")
    assert bool(records(policy(tmp_path, text), exchange_case(remote=remote))) is kept


def test_loopback_is_egress_external_when_kept(tmp_path: Path) -> None:
    [rec] = records(policy(tmp_path, stack("summary")), exchange_case(remote="127.0.0.1:80"))
    assert rec["direction"] == "egress-external"  # Go IsPrivate excludes loopback


# -- process filters (qtap.md §1.4) ------------------------------------------------------------

FILTERS = [
    ("exact", "/usr/bin/healthcheck", "/usr/bin/healthcheck", "/usr/bin/healthcheck2"),
    ("prefix", "/usr/sbin/", "/usr/sbin/nginx", "/usr/bin/nginx"),
    ("suffix", "/curl", "/opt/bin/curl", "/opt/bin/curlx"),
    ("contains", "python", "/usr/bin/python3.11", "/usr/bin/ruby"),
    ("regex", "^/opt/[a-z]+/agent$", "/opt/acme/agent", "/opt/acme/agent2"),
]


@pytest.mark.parametrize("strategy,pattern,excluded,kept", FILTERS)
def test_filter_strategies(tmp_path: Path, strategy: str, pattern: str, excluded: str,
                           kept: str) -> None:
    text = stack("summary") + f"""  filters:
    custom:
      - exe: '{pattern}'
        strategy: {strategy}
"""
    pol = policy(tmp_path, text)
    assert records(pol, exchange_case(exe=excluded)) == []
    assert len(records(pol, exchange_case(exe=kept))) == 1


@pytest.mark.parametrize("only,tls,excluded", [
    ("[]", False, True), ("[http]", False, True), ("[data]", False, True),
    ("[tls]", True, True), ("[tls]", False, False), ("[dns]", False, False)])
def test_filter_only(tmp_path: Path, only: str, tls: bool, excluded: bool) -> None:
    text = stack("summary") + f"""  filters:
    custom:
      - exe: /usr/bin/curl
        strategy: exact
        only: {only}
"""
    got = records(policy(tmp_path, text), exchange_case(tls=tls))
    assert (got == []) is excluded


def test_filter_groups(tmp_path: Path) -> None:
    text = stack("summary") + """  filters:
    groups: [qpoint, kubernetes]
"""
    pol = policy(tmp_path, text, own_pid=777)
    assert records(pol, exchange_case(pid=777, exe="/usr/bin/qtap-fluent")) == []
    assert len(records(pol, exchange_case(pid=778, exe="/usr/bin/qtap-fluent"))) == 1


# -- the guide's examples ----------------------------------------------------------------------

ERRORS_ONLY = """
stacks:
  error_only:
    plugins:
      - type: http_capture
        config:
          level: none
          format: json
          rules:
            - name: "Capture errors"
              expr: http.res.status >= 400
              level: full
tap:
  direction: all
  http:
    stack: error_only
"""


def test_guide_errors_only(tmp_path: Path) -> None:
    pol = policy(tmp_path, ERRORS_ONLY)
    assert records(pol, exchange_case(status=200)) == []
    [rec] = records(pol, exchange_case(status=503))
    assert rec["response"]["status"] == 503 and "body" in rec["response"]


PER_DOMAIN = """
stacks:
  lightweight_stack:
    plugins:
      - type: http_capture
        config: {level: summary, format: json}
  capture_all:
    plugins:
      - type: http_capture
        config: {level: full, format: json}
tap:
  direction: all
  http:
    stack: lightweight_stack
  endpoints:
    - domain: 'api.important.com'
      http:
        stack: capture_all
"""


def test_guide_per_domain_full_capture(tmp_path: Path) -> None:
    pol = policy(tmp_path, PER_DOMAIN)
    [important] = records(pol, exchange_case(host="api.important.com"))
    [other] = records(pol, exchange_case(host="api.other.com"))
    assert "body" in important["request"] and "headers" in important["request"]
    assert "headers" not in other["request"]
    [ported] = records(pol, exchange_case(host="API.Important.com:8443"))
    assert "body" in ported["request"]  # the domain matches without port, any case


EXCLUDED = stack("summary") + """  filters:
    groups:
      - qpoint
    custom:
      - exe: /usr/bin/healthcheck
        strategy: exact
      - exe: /usr/sbin/
        strategy: prefix
"""


def test_guide_excluded_processes(tmp_path: Path) -> None:
    pol = policy(tmp_path, EXCLUDED)
    assert records(pol, exchange_case(exe="/usr/bin/healthcheck")) == []
    assert records(pol, exchange_case(exe="/usr/sbin/cron")) == []
    assert len(records(pol, exchange_case(exe="/usr/bin/curl"))) == 1


def test_rules_first_match_wins_and_errors_do_not_match(tmp_path: Path) -> None:
    rules = """          rules:
            - name: missing-field
              expr: http.req.headers.x-nope == "1" and http.res.status == 200
              level: full
            - name: by-path
              expr: http.req.path == "/v1/items" and src.process.binary == "curl"
              level: headers
              format: text
            - name: never-reached
              expr: http.res.status == 200
              level: full
"""
    pol = policy(tmp_path, stack("summary", rules=rules))
    _, out = golden.run_case(exchange_case(), pol)
    assert out.lines[0].startswith("HTTP Transaction")  # the by-path rule's text format
    assert "  Headers:" in out.lines[0] and "  Body:" not in out.lines[0]


def test_rule_fields(tmp_path: Path) -> None:
    rules = """          rules:
            - name: all-fields
              expr: >-
                http.req.method == "POST" and http.req.host == "api.example.com"
                and http.req.url contains "/v1/items" and direction == "egress-internal"
                and protocol == "http1" and dst.port == 8080 and dst.ip == 10.1.1.1
                and src.process.path == "/usr/bin/curl" and http.res.headers.content-type == "text/plain"
                and tls.sni == "api.example.com"
              level: full
"""
    pol = policy(tmp_path, stack("summary", rules=rules))
    [rec] = records(pol, exchange_case(remote="10.1.1.1:8080", tls=True) | {"sni": "api.example.com"})
    assert "body" in rec["request"]


def test_bad_config_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        policy(tmp_path, "tap:\n  http:\n    stack: nope\n")
    assert info.value.problems


def test_redactor_url_memo_is_bounded_and_exact() -> None:
    from qtap_fluent import redact

    red = Redactor()
    url = "http://h/p?a=1&token=abc#frag"
    assert red.redact_url(url) == "http://h/p?a=1&token=[REDACTED]#frag"
    assert red.redact_url(url) == "http://h/p?a=1&token=[REDACTED]#frag"  # from the memo
    long_url = "http://h/p?token=x&pad=" + "y" * redact.MEMO_MAX_URL
    assert red.redact_url(long_url).startswith("http://h/p?token=[REDACTED]&pad=yyy")
    assert long_url not in red.url_memo
    for i in range(redact.MEMO_LIMIT + 10):
        assert red.redact_url(f"/x?key={i}") == "/x?key=[REDACTED]"
    assert len(red.url_memo) <= redact.MEMO_LIMIT


_keys = st.sampled_from(["id", "name", "token", "Password", "my_secret_x", "total_tokens", ":",
                         'a"b', "c\\d", "\u00e9t\u00e9", "sessi\u00f3n", " key ", "x:y"])
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from(["", ":", '"', "a:b", "\\", "v"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _json, max_size=4), st.sampled_from([None, 1]), st.booleans())
def test_no_secret_body_check_agrees_with_the_rewriter(
        value: dict[str, Any], indent: int | None, ascii_only: bool) -> None:
    """The redactor's cheap "nothing to mask" answer for JSON bodies (used at source on every
    record) is never wrong, and for text without escapes it is exact: no false "maybe"."""
    from qtap_fluent.records import HttpTransaction, Metadata, Request, Response

    red = Redactor()
    text = json.dumps(value, indent=indent, ensure_ascii=ascii_only)
    rec = HttpTransaction(metadata=Metadata(), request=Request(method="POST", url="/"),
                          response=Response(status=200, body=text.encode()),
                          transaction_time_ns=1)
    before = rec.to_dict()
    changed = red.redact_record(before) != before
    if red.leaves_unchanged(rec):
        assert not changed
    elif "\\" not in text:
        assert changed
