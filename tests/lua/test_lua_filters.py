"""Each bundled Lua filter under real LuaJIT with Fluent Bit's conventions (the harness)."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from qtap_fluent.errors import UsageError
from qtap_fluent.fluentbit.lua import filters
from qtap_fluent.fluentbit.lua.harness import LuaFilterHarness
from qtap_fluent.redact import DEFAULT_HEADERS, DEFAULT_QUERY_PARAMS, Redactor

from .samples import TS, b64, docker_record, harness, run_one, submission, transaction, unb64

M = "[REDACTED]"


# -- redact ---------------------------------------------------------------------------------------
def test_redact_structured_record() -> None:
    (out,) = run_one("redact", transaction())
    req, resp = out["request"], out["response"]
    assert req["headers"]["Authorization"] == M and req["headers"]["Cookie"] == M
    assert req["headers"]["X-Api-Key"] == M and req["headers"]["Accept"] == "application/json"
    assert req["headers"][":path"] == f"/v1/login?user=ann&access_token={M}&lang=en"
    assert req["url"] == f"https://api.example.com/v1/login?user=ann&access_token={M}&lang=en"
    assert json.loads(unb64(req["body"])) == {
        "user": "ann", "password": M, "profile": {"api_key": M, "age": 42},
        "items": [{"token": M}, 3]}
    assert json.loads(unb64(resp["body"])) == {
        "access_token": M, "expires_in": 3600, "usage": {"total_tokens": 12}}
    assert resp["headers"]["Set-Cookie"] == M and resp["status"] == 200
    assert out["metadata"] == transaction()["metadata"]
    assert out["duration_ms"] == 150 and type(out["duration_ms"]) is int


CORPUS: list[dict[str, Any]] = [
    transaction(),
    transaction(request={"method": "GET", "url": "http://h/?key=1&sig=2&x", "headers": {
        "proxy-authorization": "Basic x", "X-Auth-Token": "t"}}),
    transaction(response={"status": 500, "body": b64(b"\xff\xfe not json")}),
    transaction(request={"method": "POST", "url": "http://h/form", "content_type":
                         "application/x-www-form-urlencoded", "body": b64("user=a&password=b")}),
    transaction(request={"method": "POST", "url": "http://h/", "body": '{"secret_key": "plain"}'}),
    transaction(request={"method": "POST", "url": "http://h/", "body": b64("[1, {\"pwd\": 2}]")}),
    transaction(request={"method": "POST", "url": "http://h/", "body": b64("{bad json")}),
    {"request": {"method": "GET", "url": ""}, "response": {"status": 499}},
    transaction(response={"status": 302, "headers": {
        "Location": "https://app/cb?code=abc&state=s", "content-location": "/x?sig=1&a=2"}}),
]


@pytest.mark.parametrize("index", range(len(CORPUS)))
def test_redact_lua_equals_python(index: int) -> None:
    """One source of truth: the Lua filter and qtap_fluent.redact give the same records."""
    record = CORPUS[index]
    py = Redactor()
    (lua_structured,) = run_one("redact", record)
    assert lua_structured == py.redact_record(record)
    (lua_docker,) = run_one("redact", docker_record(record))
    expected = py.redact_record(docker_record(record))
    assert lua_docker == expected  # the log JSON strings are equal byte for byte


def test_redact_records_that_are_not_transactions_pass_untouched() -> None:
    for rec in ({"log": "plain line"}, {"msg": "x"}, {"log": "{not json"}, {"request": "GET /"}):
        assert run_one("redact", rec) == [rec]


def test_redact_missing_and_odd_fields() -> None:
    odd: list[dict[str, Any]] = [
        {"request": {}},
        {"response": {"status": 204}},
        {"request": {"headers": "not a map", "body": 5, "url": 7}},
        {"request": {"headers": {}, "body": ""}, "response": {"headers": []}},
    ]
    for rec in odd:
        assert run_one("redact", rec) == [rec]


def test_redact_binary_and_non_json_bodies_are_kept_exactly() -> None:
    binary = b64(bytes(range(256)))
    text = b64("password=hunter2 but no form content type")
    rec = transaction(response={"status": 200, "body": binary},
                      request={"method": "PUT", "url": "http://h/", "body": text})
    (out,) = run_one("redact", rec)
    assert out["response"]["body"] == binary and out["request"]["body"] == text


def test_redact_huge_headers() -> None:
    headers = {f"X-Header-{i}": "v" * 100 for i in range(2000)}
    headers["Authorization"] = "Bearer " + "x" * 1_000_000
    headers["X-Big"] = "y" * 1_000_000
    rec = transaction(request={"method": "GET", "url": "http://h/", "headers": headers})
    (out,) = run_one("redact", rec)
    got = out["request"]["headers"]
    assert got["Authorization"] == M and got["X-Big"] == "y" * 1_000_000
    assert len(got) == 2002


def test_redact_extra_names_patterns_and_mask() -> None:
    rec = transaction(request={
        "method": "GET", "url": "http://h/?q=1&token=2",
        "headers": {"X-Internal-Id": "1", "X-Custom": "c", "Authorization": "a"},
        "body": b64('{"ssn": 1, "card_pin": 2, "password": 3}')})
    (out,) = run_one("redact", rec, headers=["X-Custom", "X-Internal-*"], query_params=["q"],
                     json_key_patterns=["^card_"], mask="<hidden>")
    h = out["request"]["headers"]
    assert h == {"X-Internal-Id": "<hidden>", "X-Custom": "<hidden>", "Authorization": "<hidden>"}
    assert out["request"]["url"] == "http://h/?q=<hidden>&token=<hidden>"
    assert json.loads(unb64(out["request"]["body"])) == {
        "ssn": "<hidden>", "card_pin": "<hidden>", "password": "<hidden>"}
    (only,) = run_one("redact", rec, headers=["X-Custom"], replace_defaults=True)
    assert only["request"]["headers"]["Authorization"] == "a"
    assert only["request"]["headers"]["X-Custom"] == M


# -- enrich ---------------------------------------------------------------------------------------
def test_enrich_adds_flat_fields() -> None:
    (out,) = run_one("enrich", transaction())
    assert out["host"] == "api.example.com" and out["path"] == "/v1/login"
    assert out["query"] == "user=ann&access_token=abc123&lang=en"
    assert out["status_class"] == "2xx" and out["duration_bucket"] == "100ms-1s"
    assert out["request"] == transaction()["request"]


@pytest.mark.parametrize(
    ("ms", "bucket"),
    [(1, "<100ms"), (99, "<100ms"), (100, "100ms-1s"), (999, "100ms-1s"), (1000, "1s-10s"),
     (10000, ">=10s"), (123456, ">=10s")],
)
def test_enrich_duration_buckets(ms: int, bucket: str) -> None:
    (out,) = run_one("enrich", transaction(duration_ms=ms))
    assert out["duration_bucket"] == bucket


def test_enrich_custom_buckets_and_prefix() -> None:
    (out,) = run_one("enrich", transaction(duration_ms=2500), prefix="qtap_",
                     duration_buckets_ms=[50, 1500, 3000])
    assert out["qtap_duration_bucket"] == "1500ms-3s" and out["qtap_status_class"] == "2xx"
    assert "host" not in out and out["qtap_host"] == "api.example.com"


@pytest.mark.parametrize(("status", "cls"), [(101, "1xx"), (302, "3xx"), (499, "4xx"),
                                             (503, "5xx"), (0, None), (700, None)])
def test_enrich_status_class(status: int, cls: str | None) -> None:
    (out,) = run_one("enrich", transaction(response={"status": status}))
    assert out.get("status_class") == cls


def test_enrich_host_fallbacks() -> None:
    base: dict[str, Any] = {"response": {"status": 200}}
    cases: list[tuple[dict[str, Any], str, str, str | None]] = [
        ({"url": "https://User@Svc.Example.com:8443/a?b=1"}, "svc.example.com", "/a", "b=1"),
        ({"url": "", "headers": {"host": "h.local:80"}, "path": "/p"}, "h.local", "/p", None),
        ({"url": "", "headers": {":authority": "[::1]:8080", ":path": "/x?y=2"}}, "[::1]", "/", "y=2"),
    ]
    for req, host, path, query in cases:
        (out,) = run_one("enrich", {**base, "request": {"method": "GET", **req}})
        assert (out.get("host"), out.get("path"), out.get("query")) == (host, path, query)
    (out,) = run_one("enrich", {"metadata": {"endpoint_id": "10.0.0.5"}, "response": {"status": 1}})
    assert out["host"] == "10.0.0.5"


def test_enrich_log_shape_adds_top_level_fields_and_keeps_log() -> None:
    rec = docker_record(transaction())
    (out,) = run_one("enrich", rec)
    assert out["log"] == rec["log"] and out["host"] == "api.example.com"


def test_enrich_missing_fields() -> None:
    assert run_one("enrich", {"request": {}}) == [{"request": {}}]
    assert run_one("enrich", {"log": "x"}) == [{"log": "x"}]


# -- split_payloads -------------------------------------------------------------------------------
def test_split_payloads_summary_and_bodies() -> None:
    txn = transaction()
    summary, req_body, resp_body = run_one("split_payloads", txn)
    group = "qtap/2023/11/14/d3t55gg7p3qr49f84870"
    assert summary["group_key"] == group and summary["s3_key"] == group + "/transaction.json"
    assert "body" not in summary["request"] and "body" not in summary["response"]
    assert summary["request"]["body_s3_key"] == group + "/request_body"
    assert summary["request"]["headers"] == txn["request"]["headers"]
    assert req_body == {
        "msg": "HTTP payload", "payload": "request_body", "request_id": "d3t55gg7p3qr49f84870",
        "s3_key": group + "/request_body", "group_key": group,
        "data": unb64(txn["request"]["body"]).decode(), "data_encoding": "raw",
        "content_type": "application/json"}
    assert resp_body["payload"] == "response_body"
    assert resp_body["data"].encode() == unb64(txn["response"]["body"])


def test_split_payloads_binary_body_bytes_survive() -> None:
    raw = bytes(range(256))
    _, body = run_one("split_payloads", transaction(request={"method": "GET", "url": "/"},
                                                    response={"status": 200, "body": b64(raw)}))
    assert body["data"].encode("utf-8", "surrogateescape") == raw


def test_split_payloads_options() -> None:
    txn = transaction()
    (only_summary,) = run_one("split_payloads", txn, min_body_bytes=10**6)
    assert only_summary == txn
    summary, req_body, _ = run_one("split_payloads", txn, decode_bodies=False, key_prefix="")
    assert req_body["data"] == txn["request"]["body"] and req_body["data_encoding"] == "base64"
    assert summary["group_key"] == "2023/11/14/d3t55gg7p3qr49f84870"


def test_split_payloads_without_bodies_or_ids() -> None:
    bare = {"request": {"method": "GET", "url": "/"}, "response": {"status": 204}}
    assert run_one("split_payloads", bare) == [bare]
    rec = {"metadata": {"connection_id": "c9"}, "request": {"body": "not-base64!"}}
    summary, body = run_one("split_payloads", rec)
    assert body["data"] == "not-base64!" and body["data_encoding"] == "raw"
    assert summary["group_key"] == "qtap/2023/11/14/c9-1"


def test_split_payloads_log_shape() -> None:
    rec = docker_record(transaction())
    summary, req_body, _resp_body = run_one("split_payloads", rec)
    inner = json.loads(summary["log"])
    assert "body" not in inner["request"] and inner["request"]["body_s3_key"].endswith("request_body")
    assert list(inner) == list(transaction())
    assert summary["container_name"] == "/qtap" and req_body["payload"] == "request_body"


def test_split_payloads_chunk_of_many_keeps_order() -> None:
    h = harness("split_payloads")
    txns = [transaction(request={"method": "GET", "url": "/", "request_id": f"r{i}",
                                 "body": b64(f"body{i}")}, response={"status": 200})
            for i in range(5)]
    out = [r for _, r in h.run("t", TS, txns)]
    assert len(out) == 10
    assert [r.get("data") for r in out[1::2]] == [f"body{i}" for i in range(5)]


# -- drop -----------------------------------------------------------------------------------------
def hosts(name: str, records: list[dict[str, Any]], **params: Any) -> list[str]:
    out = harness(name, **params).run("t", TS, [copy.deepcopy(r) for r in records])
    return [r["request"]["url"] for _, r in out]


def req(url: str, status: int = 200, method: str = "GET", **extra: Any) -> dict[str, Any]:
    return {"request": {"method": method, "url": url, **extra}, "response": {"status": status}}


def test_drop_by_domain_with_subdomains_ports_and_case() -> None:
    recs = [req("https://example.com/"), req("https://API.Example.com:8443/x"),
            req("https://notexample.com/"), req("https://other.org/")]
    assert hosts("drop", recs, domains=["example.com"]) == ["https://notexample.com/",
                                                            "https://other.org/"]


def test_drop_by_url_pattern_status_and_method() -> None:
    recs = [req("http://h/health"), req("http://h/api", 503), req("http://h/api", 404),
            req("http://h/api", 200, "OPTIONS"), req("http://h/keep")]
    kept = hosts("drop", recs, url_patterns=["/health$"], status_ranges=[(500, 599), "404"],
                 methods=["options"])
    assert kept == ["http://h/keep"]


def test_drop_keep_mode_and_log_shape_and_non_transactions() -> None:
    h = harness("drop", domains=["example.com"], mode="keep")
    recs = [docker_record(transaction()), docker_record(req("https://other.org/")), {"log": "hi"}]
    out = [r for _, r in h.run("t", TS, recs)]
    assert out == [recs[0], recs[2]]


# -- qtap_unwrap ----------------------------------------------------------------------------------
def test_unwrap_lifted_submission_gives_the_transaction() -> None:
    txn = transaction()
    assert run_one("qtap_unwrap", submission(txn)) == [txn]


def test_unwrap_docker_log_gives_the_exact_json_line() -> None:
    data = json.dumps(transaction(), separators=(",", ":"))
    rec = {"container_name": "/qtap", "source": "stdout", "log": json.dumps(submission(data))}
    (out,) = run_one("qtap_unwrap", rec)
    assert out == {"container_name": "/qtap", "source": "stdout", "log": data}


def test_unwrap_then_redact_matches_python() -> None:
    rec = {"log": json.dumps(submission(transaction()))}
    (unwrapped,) = run_one("qtap_unwrap", rec)
    (redacted,) = run_one("redact", unwrapped)
    assert redacted == Redactor().redact_record(unwrapped)
    assert json.loads(redacted["log"])["request"]["headers"]["Authorization"] == M


def test_unwrap_text_format_other_lines_and_keep_fields() -> None:
    text = submission("HTTP Transaction\n================\n")
    text["contentType"] = "text/plain"
    text["container"] = "qtap"
    assert run_one("qtap_unwrap", text, keep_fields=["container"]) == [
        {"transaction_text": "HTTP Transaction\n================\n", "container": "qtap"}]
    info = {"level": "info", "message": "starting"}
    bad = submission(transaction()) | {"data_base64": "@@not base64@@"}
    assert run_one("qtap_unwrap", info) == [info]
    assert run_one("qtap_unwrap", bad) == [bad]
    assert run_one("qtap_unwrap", info, drop_other=True) == []
    assert run_one("qtap_unwrap", transaction(), drop_other=True) == [transaction()]


# -- registry and rendering -----------------------------------------------------------------------
def test_registry_entries_are_complete() -> None:
    assert set(filters.LUA_FILTERS) == {"redact", "enrich", "split_payloads", "drop",
                                        "qtap_unwrap"}
    for name, f in filters.LUA_FILTERS.items():
        script = filters.render_script(name)
        assert f"function {f.call}(" in script
        assert filters.script_filename(name) == f.asset and f.asset.startswith("qtap_")
        LuaFilterHarness(script, f.call)  # loads under LuaJIT and defines the call


def test_render_is_deterministic_and_uses_redact_defaults() -> None:
    a = filters.render_script("redact", {"headers": ["X-B", "X-A"], "json_keys": ["k"]})
    b = filters.render_script("redact", {"json_keys": ["k"], "headers": ["X-B", "X-A"]})
    assert a == b
    config_line = a.split("local CONFIG = ", 1)[1].split("\n}\n", 1)[0]
    for name in (*DEFAULT_HEADERS, *DEFAULT_QUERY_PARAMS, "x-a", "x-b"):
        assert f'"{name.lower()}"' in config_line


def test_lua_literal_strings_survive_lua() -> None:
    mask = 'a "quoted"\\ mask\nwith é and \x01'
    (out,) = run_one("redact", {"request": {"headers": {"Cookie": "c"}}}, mask=mask)
    assert out["request"]["headers"]["Cookie"] == mask


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("nope", {}, "unknown Lua filter 'nope'"),
        ("redact", {"header": ["x"]}, "unknown parameter 'header'"),
        ("redact", {"headers": "Authorization"}, "must be a list of strings"),
        ("redact", {"replace_defaults": "yes"}, "must be true or false"),
        ("drop", {"status_ranges": [(600, 500)]}, "0 <= low <= high <= 999"),
        ("drop", {"status_ranges": ["5xx"]}, "not LOW-HIGH"),
        ("drop", {"mode": "maybe"}, "must be one of drop, keep"),
        ("enrich", {"duration_buckets_ms": [100, 50]}, "strictly ascending"),
        ("split_payloads", {"min_body_bytes": -1}, "non-negative integer"),
    ],
)
def test_bad_params_give_clear_errors(name: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        filters.render_script(name, params)


def test_filter_section_and_options() -> None:
    section = filters.filter_section("split_payloads", "qtap.*", "lua/qtap_split_payloads.lua")
    entries = [(e.key, e.value) for e in section.entries]
    assert entries == [
        ("Name", "lua"), ("Match", "qtap.*"), ("script", "lua/qtap_split_payloads.lua"),
        ("call", "qtap_split_payloads"), ("time_as_table", "On")]
    assert filters.filter_options("qtap_unwrap")[-1] == ("type_int_key", filters.QTAP_INT_KEYS)
    assert filters.parse_range("500-599") == (500, 599) and filters.parse_range("404") == (404, 404)


def test_b64_helpers_agree_with_python() -> None:
    # the Lua base64 codec against Python's, on every length mod 3 and all byte values
    script = filters.render_script("split_payloads", {"key_prefix": ""})
    h = LuaFilterHarness(script + "\nfunction rt(t, ts, r) r.enc = b64encode(r.raw); "
                         "r.dec = b64decode(r.enc); return 2, ts, r end", "rt")
    for n in range(7):
        raw = bytes(range(250, 250 - n, -1)) + b"\x00" * n
        ((_, out),) = h.run("t", TS, [{"raw": raw}])
        assert out["enc"] == base64.b64encode(raw).decode()
        assert out["dec"].encode("utf-8", "surrogateescape") == raw


@pytest.mark.parametrize(
    "text",
    ["", "YQ==", "YWI=", "YWJj", "YR==", "ab=c", "abc=", "a===", "====", "abcd====", "YQ==YQ==",
     "Y Q==", "YQ=\n=", "YWJj\n", "!!!!", "YWJjZA", "é===",],
)
def test_lua_base64_accepts_exactly_what_python_redact_accepts(text: str) -> None:
    from qtap_fluent.redact import _BASE64

    script = filters.render_script("redact")
    h = LuaFilterHarness(script + "\nfunction d(t, ts, r) r.ok = b64decode(r.s) ~= nil; "
                         "return 2, ts, r end", "d")
    ((_, out),) = h.run("t", TS, [{"s": text}])
    assert out["ok"] == (_BASE64.fullmatch(text) is not None)


ODD_RECORDS: list[dict[str, Any]] = [
    {},
    {"log": ""},
    {"log": "{}"},
    {"log": '{"request": 5}'},
    {"log": "{\"request\": {\"url\": 5}, \"response\": {\"status\": \"x\"}}"},
    {"request": {}},
    {"response": {}},
    {"request": {"url": None, "headers": {"": ""}, "body": "="}},
    {"request": {"url": "http://[bad", "path": "", "headers": [1, 2]}, "response": {"status": -1}},
    {"request": {"body": b64(bytes(range(256)) * 64)}, "response": {"body": "%%%"}},
    {"request": {"headers": {f"H{i}": "v" * 1000 for i in range(500)}}},
    {"metadata": {"endpoint_id": 5}, "response": {"status": 200.5}, "duration_ms": "slow"},
    {"message": "object store submission", "data_base64": b64("[1, 2]")},
    {"message": "object store submission", "data_base64": 7},
    {"log": json.dumps({"message": "object store submission", "data_base64": "!"})},
]


@pytest.mark.parametrize("name", sorted(filters.LUA_FILTERS))
def test_every_filter_survives_odd_records(name: str) -> None:
    """A Lua error would leave the whole chunk untouched: none of these may raise one."""
    params: dict[str, Any] = {"domains": ["example.com"]} if name == "drop" else {}
    res = harness(name, **params).run_chunk("t", [(TS, r) for r in copy.deepcopy(ODD_RECORDS)])
    assert not res.untouched and res.log == []


@pytest.mark.parametrize(
    "pattern",
    ["/health$", "^/api/v%d+/", "[%w_]+", "%bxy", "%f[%w]word", "(a)(b)%2", "[]]", "[^]x]",
     "a%", "[abc", "%b(", "%fx", "(a", "a)", "%1", "(a)%2", "[%", "%"],
)
def test_lua_pattern_check_agrees_with_luajit(pattern: str) -> None:
    """The Python check rejects exactly the patterns LuaJIT's matcher rejects."""
    h = LuaFilterHarness(
        "function cb(t, ts, r)\n"
        "  local ok = true\n"
        "  for _, s in ipairs({'', 'x', 'word y', '/api/v1/', 'xay', ']', 'ab'}) do\n"
        "    ok = ok and pcall(string.find, s, r.p)\n"
        "  end\n"
        "  r.ok = ok; return 2, ts, r\n"
        "end", "cb")
    ((_, out),) = h.run("t", TS, [{"p": pattern}])
    assert (filters.lua_pattern_problem(pattern) is None) == out["ok"]
    if not out["ok"]:
        with pytest.raises(UsageError, match="not a Lua pattern"):
            filters.render_script("drop", {"url_patterns": [pattern]})


def test_recommended_order_chain_redacts_split_bodies() -> None:
    """The whole chain in the recommended order on Qtap's raw stdout line."""
    assert sorted(filters.RECOMMENDED_ORDER) == sorted(filters.LUA_FILTERS)
    records: list[dict[str, Any]] = [submission(transaction()), {"level": "info", "message": "x"}]
    for name in filters.RECOMMENDED_ORDER:
        params: dict[str, Any] = {"drop_other": True} if name == "qtap_unwrap" else {}
        records = [r for _, r in harness(name, **params).run("t", TS, records)]
    summary, req_body, resp_body = records
    assert summary["status_class"] == "2xx" and "body" not in summary["request"]
    assert summary["request"]["headers"]["Authorization"] == M
    assert json.loads(req_body["data"])["password"] == M
    assert json.loads(resp_body["data"])["access_token"] == M
