"""The harness reproduces Fluent Bit's filter_lua conventions (fluentbit.md §4), one by one."""

from __future__ import annotations

import math
from typing import Any

import pytest

from qtap_fluent.fluentbit.lua.harness import (
    FlbTime,
    HarnessError,
    LuaFilterHarness,
    LuaPanic,
    RunResult,
)

TS = FlbTime(1_700_000_000, 250_000_000)


def run(body: str, records: list[dict[str, object]], **options: Any) -> RunResult:
    h = LuaFilterHarness(f"function cb(tag, ts, record)\n{body}\nend", "cb", **options)
    return h.run_chunk("app.test", [(TS, r) for r in records])


def test_runtime_is_luajit_21() -> None:
    h = LuaFilterHarness("function cb(t, ts, r) return 0, ts, r end", "cb")
    assert h.lua("jit.version").startswith(b"LuaJIT 2.1")
    assert h.lua("_VERSION") == b"Lua 5.1"
    assert h.lua("python") is None  # no lupa bridge visible to scripts


# -- return codes ---------------------------------------------------------------------------------
def test_code_minus_one_drops_the_record() -> None:
    res = run("if record.drop then return -1, ts, record end return 0, ts, record",
              [{"drop": True}, {"keep": 1}])
    assert res.events == [(TS, {"keep": 1})]


def test_code_zero_keeps_the_original_even_if_lua_changed_it() -> None:
    res = run("record.x = 'changed'; return 0, 12345, record", [{"x": "orig"}])
    assert res.events == [(TS, {"x": "orig"})]


def test_code_two_replaces_record_and_keeps_timestamp() -> None:
    res = run("record.x = 'new'; return 2, 12345, record", [{"x": "orig"}])
    assert res.events == [(TS, {"x": "new"})]


def test_code_one_replaces_timestamp_from_a_double() -> None:
    res = run("return 1, 1700000100.5, record", [{"a": 1}])
    assert res.events == [(FlbTime(1_700_000_100, 500_000_000), {"a": 1})]


def test_code_one_with_unchanged_double_loses_nanoseconds_like_fluent_bit() -> None:
    # flb_time_to_double then flb_time_from_double: a double cannot carry 1e-9 at 1.7e9 s
    t = FlbTime(1_700_000_000, 123_456_789)
    h = LuaFilterHarness("function cb(t, ts, r) return 1, ts, r end", "cb")
    ((out_t, _),) = h.run("x", t, [{"a": 1}])
    assert out_t.sec == t.sec and out_t.nsec != t.nsec and abs(out_t.nsec - t.nsec) < 1000


def test_unexpected_code_keeps_original_and_logs() -> None:
    res = run("record.a = 2; return 7, ts, record", [{"a": 1}])
    assert res.events == [(TS, {"a": 1})]
    assert res.log == ["unexpected Lua script return code 7, original record will be kept."]


def test_no_return_values_mean_code_zero() -> None:
    res = run("record.a = 2", [{"a": 1}])
    assert res.events == [(TS, {"a": 1})] and res.log == []


def test_code_is_read_with_lua_tointeger() -> None:
    # numeric strings convert, fractions truncate toward zero
    res = run("if record.k == 1 then return '2', ts, {s = 1} end return 1.9, 5.0, {f = 1}",
              [{"k": 1}, {"k": 2}])
    assert res.events == [(TS, {"s": 1}), (FlbTime(5, 0), {"f": 1})]


# -- record splitting -------------------------------------------------------------------------
def test_array_of_maps_splits_with_the_same_timestamp() -> None:
    res = run("return 2, ts, {{n = 1}, {n = 2}, {n = 3}}", [{"a": 1}])
    assert res.events == [(TS, {"n": 1}), (TS, {"n": 2}), (TS, {"n": 3})]


def test_array_with_a_non_map_leaves_the_whole_chunk_untouched() -> None:
    body = "if record.i == 2 then return 2, ts, {{n = 1}, 'x'} end; record.seen = true; " \
           "return 2, ts, record"
    res = run(body, [{"i": 1}, {"i": 2}, {"i": 3}])
    assert res.untouched
    assert [r for _, r in res.events] == [{"i": 1}, {"i": 2}, {"i": 3}]
    assert res.log and res.log[0].startswith("invalid table returned at cb()")


def test_empty_array_from_the_record_emits_nothing() -> None:
    res = run("if record.list then return 2, ts, record.list end return 0, ts, record",
              [{"list": []}, {"other": 1}])
    assert res.events == [(TS, {"other": 1})] and not res.untouched


def test_new_empty_table_is_an_empty_map_record() -> None:
    res = run("return 2, ts, {}", [{"a": 1}])
    assert res.events == [(TS, {})]


def test_non_table_record_leaves_chunk_untouched() -> None:
    for value in ("'text'", "nil", "42"):
        res = run(f"return 2, ts, {value}", [{"a": 1}])
        assert res.untouched and res.events == [(TS, {"a": 1})]


# -- timestamps -------------------------------------------------------------------------------
def test_timestamp_is_a_double_by_default() -> None:
    res = run("record.ts = ts; record.kind = type(ts); return 2, ts, record", [{}])
    (_, rec), = res.events
    assert rec["kind"] == "number"
    assert rec["ts"] == pytest.approx(1_700_000_000.25) and isinstance(rec["ts"], float)


def test_time_as_table_passes_and_returns_sec_nsec() -> None:
    res = run("record.s = ts.sec; record.n = ts.nsec; ts.sec = ts.sec + 10; return 1, ts, record",
              [{}], time_as_table=True)
    assert res.events == [(FlbTime(1_700_000_010, 250_000_000),
                           {"s": 1_700_000_000, "n": 250_000_000})]


def test_time_as_table_with_a_non_table_leaves_the_chunk_untouched() -> None:
    # Fluent Bit does not pop the bad timestamp and packs it in place of the record
    res = run("record.x = 1; return 1, 5, record", [{"a": 1}], time_as_table=True)
    assert res.untouched and res.events == [(TS, {"a": 1})]
    assert res.log[0] == "invalid lua timestamp type returned"
    assert res.log[1].startswith("invalid table returned")
    kept = run("return 0, nil, record", [{"a": 1}], time_as_table=True)
    assert not kept.untouched and kept.log == ["invalid lua timestamp type returned"]


# -- msgpack <-> Lua conversion ---------------------------------------------------------------
def test_integral_numbers_become_ints_and_others_stay_floats() -> None:
    res = run("record.a = 1.0; record.b = 1.5; record.c = 2^53; record.d = -0.0; "
              "record.e = 1/0; return 2, ts, record", [{"i": 3, "f": 2.0}])
    (_, rec), = res.events
    assert rec["a"] == 1 and type(rec["a"]) is int
    assert rec["f"] == 2 and type(rec["f"]) is int  # a float 2.0 in, an int out (issue #641)
    assert rec["b"] == 1.5 and rec["c"] == 2**53 and type(rec["c"]) is int
    assert rec["d"] == 0 and type(rec["d"]) is int
    assert math.isinf(rec["e"])


def test_nil_removes_keys_and_null_inputs_vanish() -> None:
    res = run("record.gone = nil; record.seen = (record.n == nil); return 2, ts, record",
              [{"gone": 1, "n": None, "k": 1}])
    assert res.events == [(TS, {"k": 1, "seen": True})]


def test_tables_keep_their_kind_from_the_record() -> None:
    res = run("record.fresh = {}; return 2, ts, record", [{"arr": [], "map": {}}])
    (_, rec), = res.events
    assert rec == {"arr": [], "map": {}, "fresh": {}}


def test_lua_tables_become_arrays_by_fluent_bit_rules() -> None:
    body = ("record.seq = {1, 2, 3}; record.holes = {1, nil, 3}; record.mixed = {1, 2, x = 1}; "
            "record.sparse = {[2] = 'b'}; record.keys = {x = 1}; return 2, ts, record")
    (_, rec), = run(body, [{}]).events
    assert rec["seq"] == [1, 2, 3]
    assert rec["holes"] == [1, None, 3]  # table.maxn gives the length
    assert rec["mixed"] == [1, 2]  # maxn > 0: array, the string key is lost
    assert rec["sparse"] == [None, "b"]
    assert rec["keys"] == {"x": 1}


def test_odd_keys_follow_flb_lua_arraylength() -> None:
    body = ("record.fk = {[1.5] = 'x'}; record.neg = {[-1] = 'a'}; record.zero = {[0] = 'z'}; "
            "return 2, ts, record")
    (_, rec), = run(body, [{}]).events
    assert rec["fk"] == [None]  # key 1.5 counts as index 1, then t[1] is read: nil
    assert rec["neg"] == {-1: "a"} and rec["zero"] == {0: "z"}  # maps with integer keys


def test_type_int_key_truncates_and_matches_by_prefix() -> None:
    body = ("record.status = 200.9; record.stat = 1.5; record.statuses = 2.5; "
            "record.nested = {status = -3.7}; return 2, ts, record")
    (_, rec), = run(body, [{}], type_int_key="status").events
    assert rec["status"] == 200 and type(rec["status"]) is int
    assert rec["stat"] == 1  # the Lua key is a prefix of the configured key
    assert rec["statuses"] == 2.5  # longer than the configured key: no match
    assert rec["nested"] == {"status": -3}


def test_type_array_key_writes_empty_tables_as_arrays() -> None:
    (_, rec), = run("record.tags = {}; record.other = {}; return 2, ts, record", [{}],
                    type_array_key="tags").events
    assert rec == {"tags": [], "other": {}}


def test_strings_bytes_and_big_integers() -> None:
    res = run("return 2, ts, record", [{"bin": b"\xff\x00", "big": 2**64 - 1, "neg": -2**63,
                                        "s": "é"}])
    (_, rec), = res.events
    assert rec["bin"] == "\udcff\x00"  # bin reaches Lua as a string; bytes are kept
    assert rec["big"] == -2**63  # (double) u64 >= 2^63 converted back to int64 on x86-64
    assert rec["neg"] == -2**63 and rec["s"] == "é"


def test_roundtrip_of_nested_values() -> None:
    h = LuaFilterHarness("function cb(t, ts, r) return 0, ts, r end", "cb")
    value = {"a": [1, 2.5, {"b": [], "c": {}}], "t": True, "f": False, "s": "x" * 70000}
    assert h.roundtrip(value) == value


# -- errors -----------------------------------------------------------------------------------
def test_protected_mode_error_leaves_the_whole_chunk_untouched() -> None:
    res = run("if record.i == 2 then error('boom') end record.i = 99; return 2, ts, record",
              [{"i": 1}, {"i": 2}, {"i": 3}])
    assert res.untouched and [r for _, r in res.events] == [{"i": 1}, {"i": 2}, {"i": 3}]
    assert "boom" in res.log[0] and res.log[0].startswith("error code")


def test_unprotected_error_is_a_panic() -> None:
    with pytest.raises(LuaPanic, match="boom"):
        run("error('boom')", [{"i": 1}], protected_mode=False)


@pytest.mark.parametrize(
    ("script", "call", "message"),
    [
        ("function cb(t, ts, r", "cb", "invalid lua content"),
        ("error('at load')", "cb", "at load"),
        ("function other() end", "cb", "function cb is not found"),
        ("cb = 5", "cb", "function cb is not found"),
        ("function cb(t, ts, g, m, r) end", "cb", "metadata-aware"),
    ],
)
def test_init_errors_are_clear(script: str, call: str, message: str) -> None:
    with pytest.raises(HarnessError, match=message):
        LuaFilterHarness(script, call)


def test_unserialisable_values_are_refused() -> None:
    with pytest.raises(HarnessError, match="cannot serialise a function"):
        run("record.f = function() end; return 2, ts, record", [{}])


def test_state_persists_across_records_and_chunks() -> None:
    h = LuaFilterHarness("n = 0\nfunction cb(t, ts, r) n = n + 1; r.n = n; return 2, ts, r end",
                         "cb")
    first = h.run("x", TS, [{}, {}])
    second = h.run("x", TS, [{}])
    assert [r["n"] for _, r in first + second] == [1, 2, 3]


def test_tag_and_flb_env_are_visible() -> None:
    h = LuaFilterHarness("function cb(t, ts, r) r.tag = t; r.env = FLB_ENV.HOME; "
                         "return 2, ts, r end", "cb", env={"HOME": "/root"})
    assert h.run("docker.qtap", TS, [{}]) == [(TS, {"tag": "docker.qtap", "env": "/root"})]


def test_check_script_reports_what_fluent_bit_init_refuses() -> None:
    from qtap_fluent.fluentbit.lua.harness import check_script

    assert check_script("function cb(t, ts, r) return 0, ts, r end", "cb") is None
    assert check_script("function cb(t, ts, g, m, r) end", "cb") is None
    assert check_script("function cb(t, ts, r) end", "cb_typo") == "function cb_typo is not found"
    message = check_script("function cb(", "cb")
    assert message is not None and message.startswith("invalid lua content")
