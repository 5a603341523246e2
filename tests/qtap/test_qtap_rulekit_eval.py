"""Rulekit evaluation semantics (qtap.md §2.2): missing fields, and/or error propagation,
type-aware comparisons, lists, IPs and CIDRs, regexes, truthiness, not, functions, macros."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from qtap_fluent.qtap.rulekit import (
    Environment,
    Outcome,
    RuleSyntaxError,
    compile_rule,
)
from qtap_fluent.qtap.rulekit.functions import zone_of

TX: dict[str, Any] = {
    "http": {
        "req": {"method": "GET", "path": "/api/v1/users", "host": "api.example.com",
                "url": "https://api.example.com/api/v1/users",
                "headers": {"user-agent": "curl/8.5.0", "content-length": "512"}},
        "res": {"status": 503, "headers": {"content-type": "application/json"}},
    },
    "src.process.binary": "curl",          # flat dotted keys work too
    "src.ip": ipaddress.ip_address("10.1.2.3"),
    "dst": {"ip": "93.184.216.34", "port": 443, "domain": "api.example.com"},
    "tls": {"enabled": True, "version": 1.3, "alpn": ["h2", "http/1.1"]},
    "tags": ["bin:curl", "protocol:http2"],
    "protocol": "http2",
    "empty": "", "zero": 0, "nothing": [], "falsy": False,
}


def outcome(rule: str, ctx: dict[str, Any] = TX, **macros: str) -> Outcome:
    return compile_rule(rule, macros).evaluate(ctx).outcome


P, F, E = Outcome.PASS, Outcome.FAIL, Outcome.ERROR


@pytest.mark.parametrize(("rule", "expected"), [
    # the guide's rule and its neighbours
    ("http.res.status >= 400", P), ("http.res.status >= 503", P), ("http.res.status > 503", F),
    ("http.res.status < 600", P), ("http.res.status <= 502", F), ("http.res.status == 503", P),
    ("http.res.status != 503", F), ("http.res.status eq 503", P), ("http.res.status GT 500", P),
    # strings: exact, case-sensitive; contains is a substring test; < > are false
    ('http.req.method == "GET"', P), ('http.req.method == "get"', F),
    ('http.req.method != "POST"', P), ('http.req.path contains "/v1/"', P),
    ('http.req.headers.user-agent contains "curl"', P),
    ("http.req.method > http.req.path", F),
    # string vs number is always false: header values are strings
    ("http.req.headers.content-length > 100", F),
    ("http.req.headers.content-length == 512", F),
    ('http.req.headers.content-length == "512"', P),
    # numbers compare across int and float
    ("tls.version >= 1.3", P), ("tls.version == 1.3", P), ("dst.port == 443.0", P),
    ("dst.port > 442.5", P),
    # bool
    ("tls.enabled == true", P), ("tls.enabled != true", F), ("tls.enabled == 1", F),
    # regexes: unanchored search, == and contains match, != is "does not match"
    ("http.req.path =~ /^\\/api\\//", P), ("http.req.path matches /users$/", P),
    ("http.req.path matches |v[0-9]+|", P), ("http.req.path =~ /^\\/v1/", F),
    ("http.req.path == /users/", P), ("http.req.path contains /us.rs/", P),
    ("http.req.path != /admin/", P),
    # lists on the left: any element; contains = one element equals; != = none equal
    ('tags == "bin:curl"', P), ('tags contains "bin:curl"', P), ('tags contains "bin"', F),
    ('tags != "bin:curl"', F), ('tags != "bin:wget"', P), ("tags =~ /^protocol:/", P),
    ('tls.alpn == "h2"', P),
    # lists on the right: any element
    ("dst.port == [80, 443]", P), ("dst.port != [80, 8080]", P), ("dst.port != [80, 443]", F),
    # in
    ('http.req.method in ["GET", "HEAD"]', P), ('http.req.method in ["POST"]', F),
    ("dst.port in [443]", P), ('protocol IN ["http1", "http2"]', P),
    ("tags in ['x', 'bin:curl']", P),  # a list on the left: any of its elements
    # IPs and CIDRs (an address given as text compares as an address)
    ("src.ip in 10.0.0.0/8", P), ("src.ip == 10.0.0.0/8", P), ("src.ip != 10.0.0.0/8", F),
    ("src.ip == 10.1.2.3", P), ('src.ip == "10.1.2.3"', P), ("src.ip in 192.168.0.0/16", F),
    ("dst.ip in 93.184.0.0/16", P), ("dst.ip == 93.184.216.34", P),
    ("src.ip in ::/0", F),  # IPv4 is not inside an IPv6 network
    # truthiness of a lone value
    ("http.res.status", P), ("empty", F), ("zero", F), ("nothing", F), ("falsy", F),
    ("true", P), ("false", F), ("0", F), ('""', F), ('"x"', P),
    # not is real negation (upstream HEAD's nodeNot returns the operand's truthiness)
    ("not falsy", P), ("!tls.enabled", F), ("not http.res.status >= 400", F),
    ("!(http.res.status < 400)", P), ("not empty", P),
    # functions
    ('starts_with(http.req.path, "/api/")', P), ('starts_with(http.req.path, "/v1")', F),
    ('starts_with(dst.port, "44")', P),  # fmt.Sprint of both arguments
    ('zone(dst.domain) == "example.com"', P), ('in_zone(dst.domain, "example.com")', P),
    ('in_zone(dst.domain, "ample.com")', F), ('in_zone(dst.domain, "api.example.com")', P),
    # hex strings compare as bytes against strings
    ("http.req.method == 47:45:54", P), ("http.req.method contains 45:54", P),
])
def test_semantics(rule: str, expected: Outcome) -> None:
    assert outcome(rule) == expected


@pytest.mark.parametrize(("rule", "expected"), [
    ("missing.field", E), ("missing == 1", E), ("missing != 1", E), ("not missing", E),
    ("http.res.missing >= 400", E),
    # and: a false side decides; otherwise a missing side is an error
    ("falsy and missing", F), ("missing and falsy", F), ("missing and tls.enabled", E),
    ("tls.enabled and missing", E), ("missing and other_missing", E),
    # or: a passing side decides; otherwise a missing side is an error
    ("tls.enabled or missing", P), ("missing or tls.enabled", P), ("missing or falsy", E),
    ("falsy or missing", E), ("falsy or zero", F),
    ("missing in [1]", E), ("dst.port in [missing]", E),
    ('starts_with(missing, "a")', E), ("zone(dst.port)", E),  # zone needs a string
    ("unknown_fn(1)", E), ("unknown_macro()", E),
])
def test_errors(rule: str, expected: Outcome) -> None:
    assert outcome(rule) == expected


def test_missing_fields_are_named() -> None:
    result = compile_rule("a and b").evaluate({})
    assert result.errored and result.error is not None
    assert result.error.missing == {"a", "b"}
    assert "missing" in str(result.error)


def test_flat_and_nested_lookup_agree() -> None:
    rule = compile_rule('http.req.headers.user-agent == "x"')
    assert rule.matches({"http.req.headers.user-agent": "x"})
    assert rule.matches({"http": {"req": {"headers": {"user-agent": "x"}}}})
    assert rule.matches({"http": {"req": {"headers.user-agent": "x"}}})
    # Upstream IndexKV tries the whole rest of the key, then ONE segment: no other splits.
    assert not rule.matches({"http": {"req.headers": {"user-agent": "x"}}})
    assert not rule.matches({"http.req": {"headers.user-agent": "x"}})
    assert not rule.matches({"http": {"req": "not a map"}})


def test_precedence_changes_the_answer() -> None:
    # a and b or c == a and (b or c): with a false the whole is false even if c is true.
    ctx = {"a": False, "b": False, "c": True}
    assert outcome("a and b or c", ctx) == F
    assert outcome("(a and b) or c", ctx) == P


def test_macros() -> None:
    env = Environment({
        "is_2xx": "http.res.status >= 200 && http.res.status < 300",
        "is_error": "http.res.status >= 400",
        "api_error": "is_error() and http.req.host == 'api.example.com'",
    })
    assert env.compile("is_error()").matches(TX)
    assert env.compile("api_error()").matches(TX)
    assert not env.compile("is_2xx()").matches(TX)
    assert env.compile("is_error(1)").evaluate(TX).errored  # macros take no arguments
    assert env.unknown_calls(env.compile("nope() or is_2xx(1)").tree) == [
        ("unknown function or macro 'nope'", 0), ("macro 'is_2xx' takes no arguments", 10)]


def test_macro_cycle_is_an_error_result() -> None:
    env = Environment({"a": "b()", "b": "a()"})
    assert env.compile("a()").evaluate({}).errored


def test_macro_syntax_error_names_the_macro() -> None:
    with pytest.raises(RuleSyntaxError, match="macro 'bad'"):
        Environment({"bad": "a =="})


def test_result_value_and_properties() -> None:
    result = compile_rule("dst.port").evaluate(TX)
    assert result.passed and not result.failed and not result.errored and result.value == 443
    assert compile_rule("zero").evaluate(TX).failed


@pytest.mark.parametrize(("domain", "zone"), [
    ("example.com", "example.com"), ("api.example.com", "example.com"),
    ("a.b.example.co.uk", "example.co.uk"), ("example.com.", "example.com"),
    ("com", "com"), ("localhost", "localhost"),
])
def test_zone(domain: str, zone: str) -> None:
    assert zone_of(domain) == zone


def test_a_rule_is_compiled_once_and_reused() -> None:
    rule = compile_rule("http.res.status >= 400")
    statuses = [200, 404, 500, 302]
    assert [rule.matches({"http.res.status": s}) for s in statuses] == [False, True, True, False]
    assert [rule.evaluate({}).outcome for _ in range(3)] == [E, E, E]


def test_macro_that_is_not_a_string_is_a_clear_error() -> None:
    with pytest.raises(RuleSyntaxError, match="expected an expression string"):
        Environment({"m": 3})  # type: ignore[dict-item]


@pytest.mark.parametrize(("rule", "expected"), [
    ("x < 1", P), ("x <= 1", P), ("x > 1", F), ("x >= 1", F), ("x == 1", F), ("x != 1", P),
    ("x == y", P),  # Go's cmp.Compare: NaN sorts below every number and equals NaN
])
def test_nan_orders_like_go(rule: str, expected: Outcome) -> None:
    assert outcome(rule, {"x": float("nan"), "y": float("nan")}) == expected


def test_hex_literals_match_undecodable_bytes_carried_as_surrogates() -> None:
    raw = b"\xffGET\x00".decode("utf-8", "surrogateescape")
    assert outcome("x contains 47:45:54", {"x": raw}) == P
    assert outcome("x == ff:47:45:54:00", {"x": raw}) == P
    assert outcome("x == 47:45:54", {"x": "\ud800"}) == F  # a lone surrogate: no crash
