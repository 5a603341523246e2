"""Rulekit lexer and parser: every literal, operator, precedence, comments, error offsets."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import pytest

from qtap_fluent.qtap.rulekit import RuleSyntaxError, parse
from qtap_fluent.qtap.rulekit.ast import (
    And,
    Call,
    Compare,
    Field,
    In,
    Literal,
    Match,
    Not,
    Or,
)
from qtap_fluent.qtap.rulekit.lexer import Kind, tokenize
from qtap_fluent.qtap.rulekit.values import HexString, MacAddr


def kinds(text: str) -> list[Kind]:
    return [t.kind for t in tokenize(text)][:-1]


def literal(text: str) -> Any:
    node = parse(f"x == {text}")
    assert isinstance(node, Compare) and isinstance(node.right, Literal)
    return node.right.value


# --- literals -------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "value"), [
    ("true", True), ("FALSE", False), ("True", True),
    ("42", 42), ("-7", -7), ("+3", 3), ("0", 0),
    ("010", 8),  # Go ParseInt base 0: a leading zero is octal
    ("18446744073709551615", (1 << 64) - 1),  # uint64 max still parses
    ("1.5", 1.5), ("-0.25", -0.25), (".5", 0.5),
    ('"hello"', "hello"), ("'hello'", "hello"),
    (r'"a\"b"', 'a"b'), (r"'it\'s'", "it's"), (r'"tab\there"', "tab\there"),
    (r'"\u00e9"', "é"), (r'"\x41"', "A"),
    ("'say \"hi\"'", 'say "hi"'),
])
def test_scalar_literals(text: str, value: object) -> None:
    got = literal(text)
    assert got == value and type(got) is type(value)


def test_network_literals() -> None:
    assert literal("10.1.2.3") == ipaddress.ip_address("10.1.2.3")
    assert literal("::1") == ipaddress.ip_address("::1")
    assert literal("fe80::1:2") == ipaddress.ip_address("fe80::1:2")
    assert literal("10.0.0.0/8") == ipaddress.ip_network("10.0.0.0/8")
    assert literal("fe80::/10") == ipaddress.ip_network("fe80::/10")
    assert literal("10.1.2.3/8") == ipaddress.ip_network("10.0.0.0/8")  # host bits masked


def test_quoted_strings_that_are_addresses_become_addresses() -> None:
    assert literal('"192.168.1.1"') == ipaddress.ip_address("192.168.1.1")
    assert literal("'2001:db8::1'") == ipaddress.ip_address("2001:db8::1")
    assert literal('"192.168.0.0/16"') == ipaddress.ip_network("192.168.0.0/16")
    assert literal('"aa:bb:cc:dd:ee:ff"') == MacAddr(bytes.fromhex("aabbccddeeff"))
    assert literal('"10.0.0"') == "10.0.0"


def test_hex_regex_array_literals() -> None:
    assert literal("47:45:54") == HexString("47:45:54", b"GET")
    rx = literal("/^GET$/")
    assert isinstance(rx, re.Pattern) and rx.pattern == "^GET$"
    assert literal(r"|a/b\|c|").pattern == r"a/b\|c"
    assert literal(r"/a\/b/").search("a/b")
    node = parse('x in [1, "a", true, 10.0.0.1, y]')
    assert isinstance(node, In)
    values = [i.value if isinstance(i, Literal) else i for i in node.array.items]
    assert values == [1, "a", True, ipaddress.ip_address("10.0.0.1"), Field("y", 30)]


def test_upstream_longest_match_quirks() -> None:
    assert kinds("android") == [Kind.FUNCTION]          # longer than "and"
    assert kinds("notify") == [Kind.FUNCTION]
    assert kinds("in_zone") == [Kind.FUNCTION]
    assert kinds("ab") == [Kind.HEX]                    # hex pair wins the tie with a name
    assert kinds("abc") == [Kind.FUNCTION]
    assert kinds("http.req.headers.user-agent") == [Kind.FIELD]
    assert kinds("a--b") == [Kind.FIELD]                # "--" inside a name is not a comment
    assert kinds("10") == [Kind.INT]                    # int wins the tie with hex
    assert kinds("1.2.3.4") == [Kind.IP]
    assert kinds("aa:bb:cc:dd:ee:ff:00:11") == [Kind.IP]  # eight groups: a full IPv6


# --- operators ------------------------------------------------------------------------------

@pytest.mark.parametrize(("op", "expected"), [
    ("==", "=="), ("eq", "=="), ("EQ", "=="), ("!=", "!="), ("ne", "!="), ("Ne", "!="),
    (">", ">"), ("gt", ">"), (">=", ">="), ("ge", ">="), ("<", "<"), ("lt", "<"),
    ("<=", "<="), ("LE", "<="), ("contains", "contains"), ("CONTAINS", "contains"),
])
def test_comparison_operators(op: str, expected: str) -> None:
    node = parse(f"a {op} 1")
    assert isinstance(node, Compare) and node.op == expected


@pytest.mark.parametrize("op", ["matches", "MATCHES", "=~"])
def test_matches_operator(op: str) -> None:
    node = parse(f"a {op} /x/")
    assert isinstance(node, Match) and node.pattern.value.pattern == "x"


@pytest.mark.parametrize(("text", "cls"), [
    ("a and b", And), ("a AND b", And), ("a && b", And),
    ("a or b", Or), ("a Or b", Or), ("a || b", Or),
    ("not a", Not), ("NOT a", Not), ("!a", Not),
])
def test_logical_operators(text: str, cls: type) -> None:
    assert isinstance(parse(text), cls)


def test_in_cidr_is_equality() -> None:
    node = parse("dst.ip in 10.0.0.0/8")
    assert isinstance(node, Compare) and node.op == "=="


def test_function_calls_and_macros() -> None:
    node = parse('starts_with(http.req.path, "/api/")')
    assert isinstance(node, Call) and node.name == "starts_with" and len(node.args) == 2
    node = parse("my_macro()")
    assert node == Call("my_macro", (), 0)
    node = parse('zone(dst.domain) == "example.com"')
    assert isinstance(node, Compare) and isinstance(node.left, Call)


# --- precedence: not > or > and (upstream's goyacc declarations) ------------------------------

def test_or_binds_tighter_than_and() -> None:
    node = parse("a and b or c")
    assert isinstance(node, And) and isinstance(node.right, Or)
    node = parse("a or b and c")
    assert isinstance(node, And) and isinstance(node.left, Or)


def test_not_binds_tightest() -> None:
    node = parse("not a or b")
    assert isinstance(node, Or) and isinstance(node.left, Not)
    node = parse("not a == 1")  # a predicate is one operand of not
    assert isinstance(node, Not) and isinstance(node.operand, Compare)


def test_parentheses_and_associativity() -> None:
    node = parse("(a and b) or c")
    assert isinstance(node, Or) and isinstance(node.left, And)
    node = parse("a or b or c")
    assert isinstance(node, Or) and isinstance(node.left, Or)
    node = parse("a and b and c")
    assert isinstance(node, And) and isinstance(node.left, And)


# --- comments -------------------------------------------------------------------------------

def test_comments() -> None:
    assert parse("a == 1 -- trailing comment") == parse("a == 1")
    assert parse("-- leading\na == 1") == Compare(Field("a", 11), "==", Literal(1, "1", 16), 11)
    assert isinstance(parse("a /* inline */ == 1"), Compare)
    assert isinstance(parse("/* a\nmulti-line\ncomment */ a"), Field)


# --- guide and docs examples ----------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "http.res.status >= 400",
    "http.res.status >= 200 && http.res.status < 300",
    'req.host == "httpbin.org"',
    "res.status >= 500",
    "port == 8080", "8080 == port", "src.port == dst.port",
    "http.req.headers.content-length > 100",
    "src.pod.labels.app == 'checkout'",
    'tags contains "bin:curl"',
    "tls.version >= 1.3",
    'in_zone(dst.domain, "example.com")',
    "dst.ip in [10.0.0.1, 10.0.0.2]",
    "http.req.method in ['GET', 'HEAD']",
    'http.req.path =~ /^\\/api\\/v[0-9]+/',
])
def test_documented_rules_parse(text: str) -> None:
    parse(text)


# --- errors carry a message and the 0-based offset -------------------------------------------

@pytest.mark.parametrize(("text", "offset", "fragment"), [
    ("", 0, "empty"),
    ("-- only a comment", 0, "empty"),
    ("a ==", 4, "expected a value"),
    ("(a == 1", 7, "')'"),
    ("a == 1)", 6, "end of rule"),
    ("a > 'x'", 4, "numbers and fields"),
    ("'x' < 3", 4, "numbers and fields"),
    ("a matches 'x'", 10, "regex"),
    ("a in b", 5, "array"),
    ("a in []", 6, "a value"),
    ('"unterminated', 0, "unterminated"),
    ("a == 1 /* open", 7, "unterminated"),
    ("a == @", 5, "unexpected character"),
    ("starts_with(a)", 0, "expects 2"),
    ("a.b(1)", 0, "function name"),
    ("x == 10.0.0.0/33", 5, "CIDR"),
    ("x == 09", 5, "integer"),
    ("x == 99999999999999999999", 5, "out of range"),
    ("x =~ /(/", 5, "regex"),
    ("x =~ /(?=a)/", 6, "RE2"),
    ("x =~ /(a)\\1/", 9, "RE2"),
    ('x == "\\q"', 5, "escape"),
    ("request.path startsWith '/api/'", 13, "found name 'startsWith'"),
])
def test_syntax_errors(text: str, offset: int, fragment: str) -> None:
    with pytest.raises(RuleSyntaxError) as info:
        parse(text)
    assert info.value.offset == offset, info.value
    assert fragment in info.value.message


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(RuleSyntaxError):
        parse("(" * 5000 + "a" + ")" * 5000)
    with pytest.raises(RuleSyntaxError):
        parse("not " * 5000 + "a")
    with pytest.raises(RuleSyntaxError) as info:
        parse(" or ".join(["a"] * 1000))
    assert "deep" in info.value.message
    parse(" or ".join(["a"] * 100))  # long but reasonable chains are fine


def test_integer_range_and_colon_groups_like_upstream() -> None:
    assert literal("9223372036854775807") == (1 << 63) - 1
    assert literal("-9223372036854775808") == -(1 << 63)
    assert kinds("00:11:22:33:44:55:66:77:88") == [Kind.HEX]  # nine groups: not an address
    assert isinstance(literal("00:11:22:33:44:55:66:77:88"), HexString)
    assert literal("'q\"u\\'o'") == "q\"u'o"
    assert literal("74123412341234.123412341243") == 74123412341234.123412341243
    assert isinstance(parse("flag.1 == true or flag.2 != false"), Or)
