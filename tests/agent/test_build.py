"""build.record_map: header maps by plan agree with the general way, whatever the header block."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from qtap_fluent.agent import build
from qtap_fluent.agent.assembler import Exchange
from qtap_fluent.agent.events import Address
from qtap_fluent.agent.protocols.events import Body, RequestHead, ResponseHead
from qtap_fluent.records import from_dict, go_json
from qtap_fluent.redact import Redactor

_NAMES = st.sampled_from(["Host", "host", "User-Agent", "user-agent", "Content-Type",
                          "content-type", "Accept", "X-A", "x-a", "Transfer-Encoding",
                          "transfer-encoding", "Location", "1abc", "#x", "a b", ":path",
                          ":status", "zz", "Set-Cookie", "Authorization", "Referer",
                          "referer", "Content-Location", "X-Api-Key"])
_HEADERS = st.lists(st.tuples(_NAMES, st.sampled_from(["", "v", "chunked", "a/b", "/r?code=c",
                                                       "/r?x=1", "application/json"])),
                    max_size=6).map(tuple)


def _exchange(req_headers: Any, res_headers: Any, version: str, with_response: bool,
              target: str = "/p?q=1", body: bytes = b"{}",
              authority: str = "api.example.com") -> Exchange:
    head = RequestHead(stream_id=1, method="GET", target=target, version=version,
                       authority=authority, scheme="", headers=req_headers)
    res = ResponseHead(stream_id=1, status=200, version=version, headers=res_headers)
    return Exchange(
        conn_id=1, connection_id="c", request_id="r", pid=7, exe="/bin/x", container_id="",
        local=Address(ip="10.0.0.1", port=1), remote=Address(ip="10.0.0.2", port=80),
        client=True, direction="egress-internal", tls=False, sni="", protocol="http1",
        request=head, request_body=Body(data=body[::-1], truncated=False, wire_len=0),
        request_trailers=(), response=res if with_response else None,
        response_body=Body(data=body, truncated=False, wire_len=2), response_trailers=(),
        status=200 if with_response else 499, request_ts_ns=1, response_ts_ns=2_000_001,
        end_ts_ns=3, bytes_sent=1, bytes_received=2)


@settings(max_examples=400, deadline=None)
@given(_HEADERS, _HEADERS, st.sampled_from(["1.1", "2"]), st.booleans(),
       st.sampled_from([build.SUMMARY, build.HEADERS, build.FULL]))
def test_header_plans_agree_with_the_general_way(req_headers: Any, res_headers: Any,
                                                 version: str, with_response: bool,
                                                 level: str) -> None:
    ex = _exchange(req_headers, res_headers, version, with_response)
    p = build.Parts(ex)
    for _ in range(2):  # the first call learns the plans, the second uses them
        d = build.record_map(ex, level, p)
        ua, ctype, rq = build._request_headers(ex, p, level)
        assert d["request"].get("user_agent", "") == ua
        assert d["request"].get("content_type", "") == ctype
        assert d["request"].get("headers", {}) == rq
        assert list(d["request"].get("headers", {})) == list(rq)  # the order too
        if with_response:
            assert ex.response is not None
            res_type, rs = build._response_headers(ex.response, level)
            assert d["response"].get("content_type", "") == res_type
            assert list(d["response"].get("headers", {}).items()) == list(rs.items())
        else:
            assert "headers" not in d["response"]
        # ...and the map is a record's own map: key order and omitempty as records writes them
        assert go_json(d) == go_json(from_dict(d).to_dict())


_REDACTORS = (Redactor(), Redactor(headers=["x-a", "*path*"], query_params=["q"],
                                    json_keys=["id"], patterns=["^:auth"]))


@settings(max_examples=400, deadline=None)
@given(_HEADERS, _HEADERS, st.sampled_from(["1.1", "2"]), st.booleans(),
       st.sampled_from([build.SUMMARY, build.HEADERS, build.FULL]),
       st.sampled_from(["/p?q=1", "/p", "/p?token=t&x=1", "*", "http://h.example/a?sig=s"]),
       st.sampled_from([b"", b"{}", b'{"id":1,"password":"p"}', b'["token"]', b"q=1&code=2",
                        b'{"a":{"Cookie":"c"}}', b'{"k":"\\u0074oken"}']),
       st.sampled_from([0, 1]), st.sampled_from(["api.example.com", "h?token=t", "h?a=1", ""]))
# A "?" in the authority: the URL's query is not :path's (kept in the URL, masked in :path).
@example((("X-A", "v"),), (), "1.1", True, build.FULL, "/p?token=t&x=1", b"", 0, "h?a=1")
def test_redaction_while_building_equals_redacting_the_built_map(
        req_headers: Any, res_headers: Any, version: str, with_response: bool, level: str,
        target: str, body: bytes, which: int, authority: str) -> None:
    # record_map with a Redactor takes the plan shortcut (Redactor.redact_built) where its
    # header plans built the maps, and redact_map elsewhere: both must give what redacting the
    # plain map gives, the first time (plans learned) and the second (plans used).
    red = _REDACTORS[which]
    ex = _exchange(req_headers, res_headers, version, with_response, target, body, authority)
    p = build.Parts(ex)
    for _ in range(2):
        want = red.redact_record(build.record_map(ex, level, p))
        got = build.record_map(ex, level, p, red)
        assert got == want
        assert go_json(got) == go_json(want)


def test_plans_are_learned_once_and_bounded() -> None:
    build._request_plans.clear()
    for i in range(build._PLANS_MAX + 5):
        ex = _exchange(((f"X-{i}", "1"), ("Host", "h")), (), "1.1", True)
        build.record_map(ex, build.FULL)
    assert 0 < len(build._request_plans) <= build._PLANS_MAX
    ex = _exchange((("Accept", "1"), ("accept", "2")), (), "1.1", True)  # repeated name
    assert build.record_map(ex, build.FULL)["request"]["headers"]["Accept"] == "1"  # the first
    # The same raw name twice (plans are keyed by the names in order, repeats included): the
    # first value wins for the map and for the fields taken by position, learned or not.
    for _ in range(2):
        ex = _exchange((("User-Agent", "a"), ("Host", "h"), ("User-Agent", "b")),
                       (("Content-Type", "x/1"), ("Content-Type", "x/2")), "1.1", True)
        d = build.record_map(ex, build.FULL)
        assert d["request"]["user_agent"] == "a"
        assert d["request"]["headers"]["User-Agent"] == "a"
        assert d["response"]["content_type"] == "x/1"
        assert d["response"]["headers"]["Content-Type"] == "x/1"


def test_map_to_json_is_go_json_for_every_value() -> None:
    from qtap_fluent.records import map_to_json

    for value in ("plain", "<a href='x'>&amp;</a>", "line\u2028sep\u2029", "\u00e9t\u00e9",
                  "lone \udc80 surrogate", 2**70, -1, ["<", 1], {"k": ">"}):
        d = {"metadata": {}, "request": {"method": "GET", "url": value}, "n": value}
        assert map_to_json(d) == go_json(d), value
