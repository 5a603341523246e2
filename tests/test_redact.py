"""qtap_fluent.redact: what a user must never see leave the host, and what must stay readable."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from qtap_fluent.records import go_json
from qtap_fluent.redact import (
    DEFAULT_HEADERS,
    DEFAULT_JSON_KEYS,
    DEFAULT_QUERY_PARAMS,
    MAX_JSON_DEPTH,
    Redactor,
    glob_to_lua_pattern,
)

M = "[REDACTED]"
R = Redactor()


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def test_default_lists_cover_the_issue_list() -> None:
    lowered = {h.lower() for h in DEFAULT_HEADERS}
    assert {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"} <= lowered
    assert {"token", "access_token", "api_key", "apikey", "key", "password", "secret",
            "signature", "sig"} <= set(DEFAULT_QUERY_PARAMS)
    assert {"*password*", "*secret*", "token"} <= set(DEFAULT_JSON_KEYS)


def test_headers_by_name_case_insensitive_and_input_untouched() -> None:
    headers = {"authorization": "Bearer x", "COOKIE": "a=b", "Accept": "*/*", "X-API-KEY": ["k"]}
    before = copy.deepcopy(headers)
    out = R.redact_headers(headers)
    assert out == {"authorization": M, "COOKIE": M, "Accept": "*/*", "X-API-KEY": M}
    assert headers == before


def test_query_parameters_keep_everything_but_the_secret_values() -> None:
    url = "https://h/p;x?a=1&Access_Token=abc&api%5Fkey=z&token&sig=&b=2#token=frag"
    assert R.redact_url(url) == f"https://h/p;x?a=1&Access_Token={M}&api%5Fkey={M}&token&sig={M}&b=2#token=frag"
    assert R.redact_url("/no/query") == "/no/query"
    assert R.redact_url("https://s3/o?X-Amz-Signature=ab&X-Amz-Date=1") == \
        f"https://s3/o?X-Amz-Signature={M}&X-Amz-Date=1"


def test_url_headers_get_query_redaction() -> None:
    headers = {"Location": "https://app/cb?code=abc&state=xyz", "referer": "/p?token=1",
               "Link": "</x?token=1>"}
    assert R.redact_headers(headers) == {"Location": f"https://app/cb?code={M}&state=xyz",
                                         "referer": f"/p?token={M}", "Link": "</x?token=1>"}


def test_json_body_keys_at_any_depth_whitespace_kept() -> None:
    text = ' {"user": "ann",\n "Password" : {"old": 1},\t"items": [{"token": "t"}, 2],' \
           ' "total_tokens": 7, "client_secret": null} '
    out = R.redact_json_text(text)
    assert out == (' {"user": "ann",\n "Password" : "[REDACTED]",\t"items": [{"token": "[REDACTED]"},'
                   ' 2], "total_tokens": 7, "client_secret": "[REDACTED]"} ')


def test_escaped_keys_are_decoded_before_matching() -> None:
    assert R.redact_json_text('{"pass\\u0077ord": "x"}') == '{"pass\\u0077ord": "[REDACTED]"}'


def test_invalid_json_is_not_touched() -> None:
    for text in ('{"password": "x",}', '{"password": 01}', "[1, 2", '{"a": tru}', "", "   "):
        assert R.redact_json_text(text) is None


def test_too_deep_json_is_masked_whole() -> None:
    ok = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert R.redact_json_text(ok) == ok
    deep = '{"a":' * (MAX_JSON_DEPTH + 1) + "1" + "}" * (MAX_JSON_DEPTH + 1)
    assert R.redact_json_text(deep) == json.dumps(M)


def test_bodies_base64_json_form_text_binary() -> None:
    body = b64('{"password":"p","ok":1}')
    assert base64.b64decode(R.redact_body(body)) == b'{"password":"[REDACTED]","ok":1}'
    form = b64("user=a&password=p")
    assert base64.b64decode(R.redact_body(form, "application/x-www-form-urlencoded")) == \
        b"user=a&password=[REDACTED]"
    assert R.redact_body(form, "text/plain") == form  # not declared as a form: untouched
    binary = b64(b"\x89PNG\r\n\x1a\n\x00\x00")
    assert R.redact_body(binary) == binary
    # access_logs prints bodies as plain text, not base64
    assert R.redact_body('{"token": "t"}') == '{"token": "[REDACTED]"}'


def transaction() -> dict[str, Any]:
    return {
        "metadata": {"process_id": "1", "bytes_sent": 4},
        "request": {
            "method": "GET",
            "url": "https://api.example.com/x?token=abc",
            "path": "/x",
            "headers": {"Authorization": "Bearer t", ":path": "/x?token=abc", "Accept": "*/*"},
            "body": b64('{"password": "p"}'),
        },
        "response": {"status": 200, "headers": {"Set-Cookie": "s=1"}},
        "transaction_time": "2025-10-23T16:07:41.023379679Z",
    }


def test_record_structured() -> None:
    txn = transaction()
    before = copy.deepcopy(txn)
    out = R.redact_record(txn)
    assert txn == before
    assert out["request"]["headers"] == {"Authorization": M, ":path": f"/x?token={M}",
                                         "Accept": "*/*"}
    assert out["request"]["url"] == f"https://api.example.com/x?token={M}"
    assert base64.b64decode(out["request"]["body"]) == b'{"password": "[REDACTED]"}'
    assert out["response"]["headers"] == {"Set-Cookie": M}
    assert out["metadata"] == txn["metadata"]


def test_record_with_log_line() -> None:
    record = {"container_name": "/qtap", "log": json.dumps(transaction())}
    out = R.redact_record(record)
    inner = json.loads(out["log"])
    assert inner == R.redact_record(transaction())
    assert list(inner) == list(transaction())  # key order kept
    assert out["container_name"] == "/qtap"
    assert R.redact_record({"log": "plain text line"}) == {"log": "plain text line"}


def test_missing_and_odd_fields_do_not_fail() -> None:
    for rec in ({}, {"request": None}, {"request": {"headers": None, "body": 5, "url": 1}},
                {"response": {"status": 499}}, {"request": {"body": ""}}):
        assert R.redact_record(rec) == rec


def test_custom_lists_globs_patterns_and_mask() -> None:
    r = Redactor(headers=["X-Internal-*"], query_params=["q"], json_keys=["ssn"],
                 patterns=[r"^x-corp-"], mask="***")
    assert r.redact_headers({"X-Internal-Id": "1", "x-corp-user": "u", "Authorization": "a"}) == \
        {"X-Internal-Id": "***", "x-corp-user": "***", "Authorization": "a"}
    assert r.redact_url("/s?q=1&token=2") == "/s?q=***&token=2"
    assert r.redact_json_text('{"ssn": 1, "password": 2}') == '{"ssn": "***", "password": 2}'


def test_glob_to_lua_pattern_escapes_magic() -> None:
    assert glob_to_lua_pattern("*pass.word*") == "^.*pass%.word.*$"
    assert glob_to_lua_pattern("X-Api-Key") == "^x%-api%-key$"


# -- property: the text rewrite equals "parse, mask matching members, compare" --------------------
json_scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=8)
keys = st.sampled_from(["a", "b", "password", "Token", "total_tokens", "api_key", "x y"])
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)


def expected(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (M if R.json_keys.__contains__(k) else expected(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [expected(v) for v in value]
    return value


@settings(max_examples=200, deadline=None)
@given(json_values, st.sampled_from([None, 1, 2]), st.booleans())
def test_rewrite_matches_parse_and_mask(value: Any, indent: int | None, ascii_only: bool) -> None:
    text = json.dumps(value, indent=indent, ensure_ascii=ascii_only)
    out = R.redact_json_text(text)
    assert out is not None
    assert json.loads(out) == expected(value)


# -- typed records: "unchanged" only when the map path changes nothing ---------------------------
def _record(req_headers: tuple[tuple[str, str], ...] = (), res_headers: tuple[tuple[str, str], ...] = (),
            url: str = "http://h/a?x=1", body: bytes | None = None, res_body: bytes | None = None,
            content_type: str = "") -> Any:
    from qtap_fluent.records import HttpTransaction, Metadata, Request, Response

    return HttpTransaction(
        metadata=Metadata(process_id="1"),
        request=Request(method="POST", url=url, path=url.partition("?")[0], headers=req_headers,
                        content_type=content_type, body=body),
        response=Response(status=200, headers=res_headers, body=res_body),
        transaction_time_ns=1)


def _changes(redactor: Redactor, rec: Any) -> bool:
    before = rec.to_dict()
    return bool(redactor.redact_record(before) != before)


def test_fast_path_takes_the_common_record_and_leaves_secrets_to_the_full_path() -> None:
    plain = _record(req_headers=(("User-Agent", "curl"), (":path", "/a?x=1")),
                    res_headers=(("Content-Type", "application/json"),),
                    res_body=b'{"id":42,"name":"widget-1"}')
    assert R.leaves_unchanged(plain) and not _changes(R, plain)
    for rec in (
        _record(req_headers=(("authorization", "Bearer x"),)),
        _record(res_headers=(("Location", "/cb?code=abc"),)),
        _record(url="http://h/a?x=1&access_token=t"),
        _record(url="http://h/a?%74oken=t"),  # percent-encoded name
        _record(body=b' {"a":{"Password":"p"}}'),
        _record(body=b'{"p\\u0061ssword":"p"}'),  # escaped key
        _record(body=b"a=1&secret=s", content_type="application/x-www-form-urlencoded"),
        _record(res_body=b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)),
    ):
        assert _changes(R, rec), rec
        assert not R.leaves_unchanged(rec), rec


def test_fast_path_folds_case_like_the_regexes() -> None:
    # U+017F (long s) matches "s" under re.IGNORECASE, so a glob sees "ſecret" as "secret":
    # the needle shortcut must not skip such a body.
    red = Redactor(json_keys=["*secret*"])
    rec = _record(body='{"\u017fecret":"x"}'.encode())
    assert _changes(red, rec) and not red.leaves_unchanged(rec)
    deep_clean = _record(res_body=b'{"a":' * 150 + b"1" + b"}" * 150 + b' ' + b"")
    assert R.leaves_unchanged(deep_clean) and not _changes(R, deep_clean)
    many = _record(res_body=b"[" + b",".join([b'{"id":1}'] * 300) + b"]")
    assert R.leaves_unchanged(many) and not _changes(R, many)


_names = st.sampled_from(["a", "id", "Token", "total_tokens", "my_secret", "Cookie", "x-api-key",
                          "Location", ":path", "p\u00e5ss", "\u017fecret", "code"])
_query = st.lists(st.tuples(_names | st.text(max_size=4), st.text(max_size=4)), max_size=3).map(
    lambda kv: "&".join(f"{k}={v}" for k, v in kv))
_body = (json_values.map(lambda v: json.dumps(v).encode())
         | st.dictionaries(_names, json_values, max_size=3).map(
             lambda d: json.dumps(d, ensure_ascii=False).encode())
         | st.binary(max_size=12) | _query.map(str.encode))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_names, st.text(max_size=6) | _query.map(lambda q: "/p?" + q)),
                max_size=3).map(tuple),
       _query, _body, st.sampled_from(["", "application/x-www-form-urlencoded"]))
def test_fast_path_never_skips_a_change(headers: Any, query: str, body: bytes, ctype: str) -> None:
    for red in (R, Redactor(json_keys=["*secret*", "id"], patterns=["^x-"])):
        rec = _record(req_headers=headers, res_headers=headers, url="http://h/p?" + query,
                      body=body, res_body=body, content_type=ctype)
        if red.leaves_unchanged(rec):
            assert not _changes(red, rec)


def _map_path(redactor: Redactor, rec: Any) -> Any:
    """What the policy did before the typed path: the record through the map and back."""
    from qtap_fluent.records import from_dict

    before = rec.to_dict()
    after = redactor.redact_record(before)
    return rec if after == before else from_dict(after, container_id=rec.container_id)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_names, st.text(max_size=6) | _query.map(lambda q: "/p?" + q)),
                max_size=3).map(tuple),
       _query, _body, st.sampled_from(["", "application/x-www-form-urlencoded"]),
       st.sampled_from([b"", b"plain"]))
def test_policy_redaction_equals_the_map_path(headers: Any, query: str, body: bytes, ctype: str,
                                              res_body: bytes) -> None:
    from qtap_fluent.agent.policy import redact

    for red in (R, Redactor(json_keys=["*secret*", "id"], patterns=["^x-"])):
        rec = _record(req_headers=headers, res_headers=headers[::-1], url="http://h/p?" + query,
                      body=body, res_body=res_body, content_type=ctype)
        want = _map_path(red, rec)
        got = redact(rec, red)
        assert got == want
        assert got.to_json() == want.to_json()
        assert (got is rec) == (want is rec)


def test_typed_records_mask_headers_queries_and_bodies() -> None:
    from qtap_fluent.agent.policy import redact

    rec = _record(req_headers=(("Cookie", "a=b"), ("X-B", "1"), (":path", "/a?token=t&x=1")),
                  url="http://h/a?token=t&x=1", res_body=b'{"id":1}')
    got = redact(rec, R)
    assert got == _map_path(R, rec)
    assert dict(got.request.headers) == {"Cookie": M, "X-B": "1", ":path": f"/a?token={M}&x=1"}
    assert got.request.url == f"http://h/a?token={M}&x=1"
    body_secret = _record(body=b'{"password":"p"}')
    assert redact(body_secret, R) == _map_path(R, body_secret)
    assert redact(body_secret, R).request.body == b'{"password":"[REDACTED]"}'
    plain = _record(res_body=b'{"id":1}')
    assert redact(plain, R) is plain


def test_learned_header_names_still_check_url_values_and_repeats() -> None:
    red = Redactor()
    plain = _record(req_headers=((":path", "/a?x=1"), ("Referer", "/r?y=2"), ("X-A", "1")),
                    res_headers=(("Location", "/l?z=3"),))
    for rec in (plain, plain.with_map(plain.to_dict())):
        assert red.leaves_unchanged(rec) and not _changes(red, rec)  # the names are learned now
    for rec in (
        _record(req_headers=((":path", "/a?token=t"), ("X-A", "1"))),
        _record(req_headers=(("Referer", "/r?code=c"),)),
        _record(res_headers=(("Location", "/l?sig=s"),)),
        _record(res_headers=(("Location", "/l?sig=s"), ("Location", "/a"))),  # repeated name
        _record(req_headers=(("X-A", "1"), ("Cookie", "c=1"))),
    ):
        for r in (rec, rec.with_map(rec.to_dict())):
            assert _changes(red, r) and not red.leaves_unchanged(r), r


def test_body_shortcut_folds_ascii_case_and_sends_the_rest_to_the_parser() -> None:
    # (body, masked by the map path, decided by the shortcut alone)
    for body, secret, unchanged in (
            (b'{"ID":1,"Access_TOKEN":"t"}', True, False), (b'{"tokens":[1]}', False, True),
            (b'{"total":1}', False, True), ('{"n":"\u00e9"}'.encode(), False, True),
            ('{"\u212aey":1,"to\u212aen":"t"}'.encode(), True, False),  # Kelvin sign K
            (b' \n{"a":{"Cookie":"c"}}', True, False), (b"[1,2]", False, True)):
        rec = _record(res_body=body)
        assert _changes(R, rec) == secret, body
        assert R.leaves_unchanged(rec) == unchanged, body


# -- redact_map: in place, equal to redact_record, and says exactly whether it changed ------------
@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_names, st.text(max_size=6) | _query.map(lambda q: "/p?" + q)
                          | st.just(M)), max_size=3).map(tuple),
       _query, _body, st.sampled_from(["", "application/x-www-form-urlencoded"]),
       st.booleans())
def test_redact_map_equals_redact_record(headers: Any, query: str, body: bytes, ctype: str,
                                         raw: bool) -> None:
    for red in (R, Redactor(json_keys=["*secret*", "id"], patterns=["^x-"])):
        rec = _record(req_headers=headers, res_headers=headers[::-1], url="http://h/p?" + query,
                      body=body, res_body=body, content_type=ctype)
        before = rec.to_dict()
        want = red.redact_record(before)
        got = rec.to_dict()
        bodies = (rec.request.body, rec.response.body) if raw else (None, None)
        changed = red.redact_map(got, *bodies)
        assert got == want
        assert changed == (want != before)
        assert go_json(got) == go_json(want)


def test_redact_map_masks_in_place_and_learns_plans_within_bounds() -> None:
    from qtap_fluent import redact

    red = Redactor()
    d = _record(req_headers=(("Cookie", "a=b"), (":path", "/a?token=t&x=1"), ("X-B", "1")),
                url="http://h/a?token=t&x=1").to_dict()
    headers = d["request"]["headers"]
    assert red.redact_map(d)
    assert d["request"]["headers"] is headers  # the same map, masked in place
    assert headers == {"Cookie": M, ":path": f"/a?token={M}&x=1", "X-B": "1"}
    assert d["request"]["url"] == f"http://h/a?token={M}&x=1"
    assert not red.redact_map(d)  # already masked: nothing changes the second time
    for i in range(redact.MEMO_LIMIT + 3):
        red.redact_map({"request": {"method": "GET", "url": "/", "headers": {f"X-{i}": "1"}},
                        "response": {"status": 200}})
    assert 0 < len(red.header_plans) <= redact.MEMO_LIMIT
