"""Hypothesis: any text either parses or raises RuleSyntaxError with an offset inside the text;
whatever parses evaluates against any context without raising."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qtap_fluent.qtap.rulekit import Environment, Outcome, RuleSyntaxError, compile_rule, parse

# Fragments that make random text look like rules, so the fuzzer gets past the lexer.
FRAGMENTS = [
    "a", "b.c", "http.res.status", "x-y", "_f", "f(", ")", "(", "[", "]", ",", " ", "\n",
    "and", "OR", "not", "!", "&&", "||", "==", "!=", ">=", "<", "eq", "contains", "matches",
    "=~", "in", "1", "-2", "3.5", ".5", "010", "true", "False", '"s"', "'t'", '"\\"', "'",
    '"', "10.0.0.1", "::1", "10.0.0.0/8", "fe80::/10", "ab:cd", "ab", "/re/", "/(/", "|p|",
    "|", "--c\n", "/*", "*/", "starts_with(", "zone(", "in_zone(", "m()", "\\", "@", "é",
]

rule_like = st.lists(st.sampled_from(FRAGMENTS), max_size=25).map("".join)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["a", "b", "c", "status", "b.c", "http", "res"]), inner, max_size=3),
    max_leaves=8,
)
contexts = st.dictionaries(
    st.sampled_from(["a", "b", "b.c", "http", "http.res.status", "x-y", "_f", "m"]), values,
    max_size=5)


def _check(text: str) -> None:
    try:
        parse(text)
    except RuleSyntaxError as exc:
        assert 0 <= exc.offset <= len(text)
        assert exc.message


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=60))
def test_random_text_only_raises_rule_syntax_error(text: str) -> None:
    _check(text)


@settings(max_examples=600, deadline=None)
@given(rule_like)
def test_rule_like_text_only_raises_rule_syntax_error(text: str) -> None:
    _check(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule_like, contexts)
def test_whatever_parses_evaluates_without_raising(text: str, ctx: dict[str, Any]) -> None:
    env = Environment({"m": "a or b"})
    try:
        rule = env.compile(text)
    except RuleSyntaxError:
        return
    result = rule.evaluate(ctx)
    assert result.outcome in (Outcome.PASS, Outcome.FAIL, Outcome.ERROR)
    assert rule.matches(ctx) == result.passed


@settings(max_examples=200, deadline=None)
@given(st.integers(-10**6, 10**6), st.integers(-10**6, 10**6))
def test_integer_comparisons_agree_with_python(left: int, right: int) -> None:
    ctx = {"x": left}
    for op, expected in ((">", left > right), (">=", left >= right), ("<", left < right),
                         ("<=", left <= right), ("==", left == right), ("!=", left != right)):
        assert compile_rule(f"x {op} {right}").matches(ctx) is expected


# --- differential: compiled closures (with their fast paths) vs a plain tree walker ----------

def _index_kv(ctx: Any, key: str) -> tuple[bool, Any]:
    """Upstream IndexKV, written the obvious recursive way."""
    if not isinstance(ctx, dict):
        return False, None
    if key in ctx:
        return True, ctx[key]
    head, dot, rest = key.partition(".")
    if not dot or head not in ctx:
        return False, None
    return _index_kv(ctx[head], rest)


def _reference(node: Any, ctx: dict[str, Any]) -> tuple[str, Any]:
    from qtap_fluent.qtap.rulekit import ast as A
    from qtap_fluent.qtap.rulekit import values as V

    if isinstance(node, A.Literal):
        return "ok", node.value
    if isinstance(node, A.Field):
        found, value = _index_kv(ctx, node.name)
        return ("ok", value) if found else ("err", None)
    if isinstance(node, A.Array):
        items = []
        for item in node.items:
            kind, value = _reference(item, ctx)
            if kind == "err":
                return kind, value
            items.append(value)
        return "ok", items
    if isinstance(node, (A.Compare, A.Match, A.In)):
        lk, lv = _reference(node.left, ctx)
        right = node.pattern if isinstance(node, A.Match) else (
            node.array if isinstance(node, A.In) else node.right)
        rk, rv = _reference(right, ctx)
        if lk == "err" or rk == "err":
            return "err", None
        if isinstance(node, A.In):
            return "ok", V.compare_each(rv, V.EQ, lambda item, o: V.compare(item, o, lv))
        return "ok", V.compare(lv, V.EQ if isinstance(node, A.Match) else node.op, rv)
    if isinstance(node, A.Not):
        kind, value = _reference(node.operand, ctx)
        return (kind, value) if kind == "err" else ("ok", V.is_zero(value))
    if isinstance(node, (A.And, A.Or)):
        lk, lv = _reference(node.left, ctx)
        want_zero = isinstance(node, A.And)  # and: a zero side decides; or: a non-zero side
        if lk == "ok" and V.is_zero(lv) == want_zero:
            return "ok", lv
        rk, rv = _reference(node.right, ctx)
        if rk == "ok" and V.is_zero(rv) == want_zero:
            return "ok", rv
        if lk == "err" or rk == "err":
            return "err", None
        return "ok", want_zero  # and: both passed; or: both failed
    return "err", None  # calls: not generated below


_fields = st.sampled_from(["a", "b", "c.d", "n", "s"])
_numbers = st.sampled_from(["1", "0", "-2", "2.5"])
_operands = st.one_of(_fields, _numbers, st.sampled_from(
    ['"x"', '"xy"', "true", "false", "10.1.2.3", '"10.1.2.3"']))
_predicates = st.one_of(
    _operands,
    st.tuples(_operands, st.sampled_from(["==", "!=", "contains"]), st.one_of(
        _operands, st.just("/x/"), st.just('[1, "x"]'))).map(" ".join),
    st.tuples(st.one_of(_fields, _numbers), st.sampled_from([">", ">=", "<", "<="]),
              st.one_of(_fields, _numbers)).map(" ".join),
    st.tuples(_operands, st.sampled_from(['in [1, "x", s]', "in 10.0.0.0/8", "=~ /^x/",
                                          "matches /y$/"])).map(" ".join),
)
simple_rules = st.recursive(
    _predicates,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["and", "or", "&&", "||"]), inner).map(" ".join),
        inner.map(lambda r: f"not {r}"),
        inner.map(lambda r: f"({r})"),
    ),
    max_leaves=6,
)
leaf = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(-3, 3),
                 st.sampled_from(["", "x", "xy", "10.1.2.3"]),
                 st.lists(st.sampled_from(["x", "y", 1]), max_size=3))
simple_ctx = st.fixed_dictionaries({}, optional={
    "a": leaf, "b": leaf, "n": leaf, "s": leaf, "c.d": leaf,
    "c": st.fixed_dictionaries({}, optional={"d": leaf})})


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(simple_rules, simple_ctx)
def test_compiled_rules_agree_with_a_tree_walker(text: str, ctx: dict[str, Any]) -> None:
    tree = parse(text)  # the strategy writes only valid rules
    kind, value = _reference(tree, ctx)
    expected = Outcome.ERROR if kind == "err" else (
        Outcome.FAIL if _zero(value) else Outcome.PASS)
    assert compile_rule(text).evaluate(ctx).outcome == expected, (text, ctx)


def _zero(value: Any) -> bool:
    from qtap_fluent.qtap.rulekit.values import is_zero
    return is_zero(value)
