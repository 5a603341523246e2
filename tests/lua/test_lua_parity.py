"""Property: the Lua JSON scanner/redactor and qtap_fluent.redact agree on any input text."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from qtap_fluent.fluentbit.lua import filters
from qtap_fluent.fluentbit.lua.harness import LuaFilterHarness
from qtap_fluent.redact import MAX_JSON_DEPTH, Redactor

from .samples import TS

PY = Redactor()
LUA = LuaFilterHarness(
    filters.render_script("redact")
    + "\nfunction probe(t, ts, r)\n"
    "  local out = json_redact(r.text, is_secret_key, MASK_JSON)\n"
    "  local v, ok = json_decode(r.text)\n"
    "  return 2, ts, {out = out or false, valid = ok}\n"
    "end\n",
    "probe",
)


def lua_redact(text: str) -> tuple[str | None, bool]:
    ((_, out),) = LUA.run("t", TS, [{"text": text}])
    return (out["out"] if out["out"] is not False else None), out["valid"]


scalars = st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(
    allow_nan=False, allow_infinity=False) | st.text(max_size=6)
keys = st.sampled_from(["a", "password", "PassWord", "token", "total_tokens", "é", "x\"y", "\n"])
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(values, st.sampled_from([None, 0, 2]), st.booleans())
def test_valid_json_same_output(value: Any, indent: int | None, ascii_only: bool) -> None:
    text = json.dumps(value, indent=indent, ensure_ascii=ascii_only)
    out, valid = lua_redact(text)
    assert valid
    assert out == PY.redact_json_text(text)


@settings(max_examples=300, deadline=None)
@given(values, st.data())
def test_damaged_json_same_verdict(value: Any, data: st.DataObject) -> None:
    text = json.dumps(value)
    cut = data.draw(st.integers(0, len(text)))
    junk = data.draw(st.sampled_from(["", ",", "}", "]", '"', "\\", "0", "-", ".", "e", " ", "\x01"]))
    damaged = text[:cut] + junk + text[cut + 1 :]
    out, valid = lua_redact(damaged)
    py = PY.redact_json_text(damaged)
    assert out == py
    try:
        json.loads(damaged)
        py_valid = True
    except ValueError:
        py_valid = False
    assert valid == py_valid


def test_depth_limit_is_the_same() -> None:
    for depth in (MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1):
        text = '{"a":' * depth + "1" + "}" * depth
        assert lua_redact(text)[0] == PY.redact_json_text(text)
