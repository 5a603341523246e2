"""Built-in filters on Qtap-shaped records."""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from typing import Any

import brotli
import pytest

from qtap_fluent.serve.filters import FILTERS, duration_bucket
from qtap_fluent.serve.plugins import PluginError


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def tx(**kw: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "metadata": {"process_exe": "/usr/bin/curl", "endpoint_id": "api.test"},
        "request": {"method": "POST", "url": "https://api.test/v1/items?token=abc&page=2",
                    "protocol": "http1",
                    "headers": {"Authorization": "Bearer xyz", "Content-Type": "application/json"},
                    "body": b64(b'{"password":"hunter2","name":"n"}')},
        "response": {"status": 404, "content_type": "application/json", "headers": {}},
        "duration_ms": 120, "direction": "egress-external"}
    rec.update(kw)
    return rec


@pytest.mark.parametrize(("coding", "encode"), [
    ("gzip", gzip.compress), ("deflate", zlib.compress),
    ("deflate", lambda d: zlib.compress(d)[2:-4]),  # raw deflate, as some servers send it
    ("br", brotli.compress), ("", lambda d: d)])
def test_decode_body_undoes_content_encoding(coding: str, encode: Any) -> None:
    body = '{"ok": true, "text": "héllo"}'
    rec = tx(response={"status": 200, "content_type": "application/json; charset=utf-8",
                       "headers": {"Content-Encoding": coding},
                       "body": b64(encode(body.encode()))})
    out = FILTERS["decode_body"]({})("t", 0.0, rec)
    assert isinstance(out, dict)
    assert out["response"]["body"] == body
    assert out["request"]["body"] == '{"password":"hunter2","name":"n"}'


def test_decode_body_leaves_binary_and_bombs_alone() -> None:
    png = tx(response={"status": 200, "content_type": "image/png", "body": b64(b"\x89PNG")})
    out = FILTERS["decode_body"]({})("t", 0.0, png)
    assert isinstance(out, dict) and out["response"]["body"] == b64(b"\x89PNG")
    bomb = gzip.compress(b"a" * (11 * 1024 * 1024))
    rec = tx(response={"status": 200, "content_type": "text/plain",
                       "headers": {"Content-Encoding": "gzip"}, "body": b64(bomb)})
    out = FILTERS["decode_body"]({})("t", 0.0, rec)
    assert isinstance(out, dict) and out["response"]["body"] == b64(bomb)


def test_redact_defaults_and_docker_wrapped_log() -> None:
    fn = FILTERS["redact"]({})
    out = fn("t", 0.0, tx())
    assert isinstance(out, dict)
    assert out["request"]["headers"]["Authorization"] != "Bearer xyz"
    assert "token=abc" not in out["request"]["url"] and "page=2" in out["request"]["url"]
    assert b"hunter2" not in base64.b64decode(out["request"]["body"])
    wrapped = {"log": json.dumps(tx()), "container_id": "c"}
    out = fn("t", 0.0, wrapped)
    assert isinstance(out, dict) and "Bearer xyz" not in out["log"]


def test_enrich() -> None:
    out = FILTERS["enrich"]({})("t", 0.0, tx())
    assert isinstance(out, dict)
    assert out["enrich"] == {"host": "api.test", "path": "/v1/items",
                             "query": "token=abc&page=2", "status_class": "4xx",
                             "duration_bucket": "le_250ms"}
    assert duration_bucket(20000) == "gt_10000ms" and duration_bucket(10) == "le_10ms"


def test_sample_every_and_rate() -> None:
    every = FILTERS["sample"]({"every": 3})
    kept = [i for i in range(9) if every("t", 0.0, {"i": i}) is not None]
    assert kept == [0, 3, 6]
    rate = FILTERS["sample"]({"rate": 0.25, "seed": 1})
    n = sum(rate("t", 0.0, {"i": i}) is not None for i in range(4000))
    assert 800 < n < 1200
    with pytest.raises(PluginError, match="exactly one of 'rate' or 'every'"):
        FILTERS["sample"]({})


@pytest.mark.parametrize(("rule", "kept"), [
    ("http.res.status >= 400", False),
    ('http.req.method == "GET"', True),
    ('http.req.host == "api.test" and http.req.path == "/v1/items"', False),
    ('http.req.headers.authorization == "Bearer xyz"', False),
    ('src.process.binary == "curl"', False),
    ("http.res.nope > 1", True),  # an error result is "no match": drop keeps the record
])
def test_drop_by_qtap_rule(rule: str, kept: bool) -> None:
    out = FILTERS["drop"]({"rule": rule})("t", 0.0, tx())
    assert (out is not None) is kept
    keep = FILTERS["keep"]({"rule": rule})("t", 0.0, tx())
    assert (keep is not None) is (not kept)


def test_bad_filter_options_name_the_problem() -> None:
    with pytest.raises(PluginError, match="drop: 'rule'"):
        FILTERS["drop"]({})
    with pytest.raises(PluginError, match="unknown option"):
        FILTERS["enrich"]({"colour": 1})
