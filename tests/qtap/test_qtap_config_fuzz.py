"""Hypothesis: the loader never raises, whatever the text, and every problem has a position."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qtap_fluent.problems import Problem
from qtap_fluent.qtap.config import load

# Keys of the schema, so random documents reach deep into the loader.
KEYS = ["version", "services", "event_stores", "object_stores", "qscan", "type", "id", "token",
        "value", "bucket", "region", "endpoint", "access_key", "secret_key", "insecure", "tls",
        "headers", "stacks", "s", "plugins", "config", "level", "format", "rules", "expr",
        "name", "object_store", "mode", "tap", "direction", "ignore_loopback", "http", "stack",
        "endpoints", "domain", "filters", "groups", "custom", "exe", "strategy", "only",
        "tags", "key", "source", "location", "control", "default", "actions", "rulekit",
        "macros", "event_store", "disabled"]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from(
        ["s3", "stdout", "env", "text", "full", "details", "json", "regex", "(", "none", "s",
         "http.res.status >= 400", "a ==", "m()", "*.x", "allow", "qpoint", "data"]),
    st.text(max_size=8))
DOCS = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(KEYS), inner, max_size=4),
    max_leaves=25,
)


def _check(text: str) -> None:
    _, problems = load(text, "fuzz.yaml")
    for p in problems:
        assert isinstance(p, Problem)
        assert p.line >= 1 and p.col >= 1 and p.message and p.rule


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_garbage_text_never_raises(text: str) -> None:
    _check(text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), DOCS, max_size=6))
def test_random_schema_shaped_documents_never_raise(doc: dict[str, Any]) -> None:
    _check(yaml.safe_dump(doc, default_flow_style=False))
    _check(yaml.safe_dump(doc, default_flow_style=True))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([
    "tap:", "  http:", "    stack: x", "stacks:", "  x:", "    plugins:", "      - type: http_capture",
    "        config:", "          level: details", "          rules:", "            - expr: |",
    "                a ==", "              level: full", "  - 1", "  : :", "\t", "'", "&a", "*a",
    "<<: *a", "? x", "- [", "{", "services: {event_stores: [{type: s3}]}",
]), max_size=14).map("\n".join))
def test_line_soup_never_raises(text: str) -> None:
    _check(text)
