"""Built-in ``serve`` filters and their one registry, ``FILTERS``.

Every filter works on a Qtap transaction record (qtap.md 3.1: ``request``/``response`` maps,
base64 bodies) and on the Docker-wrapped form where that record is the JSON text in ``log``.
Each factory validates its options and raises ``PluginError`` naming the bad one.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import zlib
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from qtap_fluent.serve.plugins import FilterFn, FilterResult, PluginError, Record

#: Largest body decode_body will inflate (zip-bomb bound); larger bodies stay as they were.
MAX_DECODED_BODY = 10 * 1024 * 1024

_TEXTUAL = ("text/", "json", "xml", "javascript", "x-www-form-urlencoded", "yaml", "csv",
            "graphql", "html")


def on_transaction(record: Record, fn: Callable[[Record], Record | None]) -> Record | None:
    """Apply ``fn`` to the transaction in ``record``, unwrapping and rewrapping ``log``."""
    log = record.get("log")
    if "request" not in record and isinstance(log, str):
        try:
            inner = json.loads(log)
        except ValueError:
            return record
        if not isinstance(inner, dict):
            return record
        out = fn(inner)
        if out is None:
            return None
        return {**record, "log": json.dumps(out, ensure_ascii=False, separators=(",", ":"))}
    return fn(record)


def _header(headers: Any, name: str) -> str:
    if not isinstance(headers, Mapping):
        return ""
    for key, value in headers.items():
        if str(key).lower() == name:
            return str(value)
    return ""


# --- decode_body ------------------------------------------------------------------------------
def _inflate(data: bytes, coding: str) -> bytes | None:
    import brotli

    coding = coding.strip().lower()
    try:
        if coding in ("gzip", "x-gzip"):
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif coding == "deflate":
            # RFC 9110 8.4.1.2: "deflate" is zlib-wrapped; some servers send it raw.
            d = zlib.decompressobj(zlib.MAX_WBITS if data[:1] == b"\x78" else -zlib.MAX_WBITS)
        elif coding == "br":
            out = bytes(brotli.decompress(data))
            return out if len(out) <= MAX_DECODED_BODY else None
        elif coding in ("", "identity"):
            return data
        else:
            return None
        out = d.decompress(data, MAX_DECODED_BODY + 1)
    except (zlib.error, ValueError, brotli.error):
        return None
    return out if len(out) <= MAX_DECODED_BODY else None


def _decode_side(part: Any) -> Any:
    if not isinstance(part, Mapping) or not isinstance(part.get("body"), str):
        return part
    headers = part.get("headers")
    ctype = str(part.get("content_type") or _header(headers, "content-type")).lower()
    if not any(t in ctype for t in _TEXTUAL):
        return part
    try:
        raw = base64.b64decode(part["body"], validate=True)
    except (binascii.Error, ValueError):
        return part  # already text (access_logs style) or not base64
    coding = _header(headers, "content-encoding")
    for step in reversed([c for c in coding.split(",") if c.strip()]):
        inflated = _inflate(raw, step)
        if inflated is None:
            return part
        raw = inflated
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return part
    return {**part, "body": text, "body_decoded": True}


def make_decode_body(options: Mapping[str, Any]) -> FilterFn:
    """Base64 bodies of textual content types become text; gzip/deflate/br are undone."""
    _no_options("decode_body", options)

    def run(record: Record) -> Record:
        return {**record, **{side: _decode_side(record[side])
                             for side in ("request", "response") if side in record}}

    return lambda tag, time, record: on_transaction(record, run)


# --- redact -----------------------------------------------------------------------------------
def make_redact(options: Mapping[str, Any]) -> FilterFn:
    """Mask headers, query parameters and JSON body keys (D's ``qtap_fluent.redact``)."""
    from qtap_fluent import redact

    known = {"headers", "query_params", "json_keys", "patterns", "mask", "defaults"}
    _only("redact", options, known)
    defaults = bool(options.get("defaults", True))

    def names(key: str, default: tuple[str, ...]) -> list[str]:
        extra = options.get(key) or []
        if not isinstance(extra, list) or not all(isinstance(x, str) for x in extra):
            raise PluginError(f"redact: '{key}' must be a list of names")
        return (list(default) if defaults else []) + list(extra)

    redactor = redact.Redactor(
        headers=names("headers", redact.DEFAULT_HEADERS),
        query_params=names("query_params", redact.DEFAULT_QUERY_PARAMS),
        json_keys=names("json_keys", redact.DEFAULT_JSON_KEYS),
        patterns=names("patterns", ()),
        mask=str(options.get("mask", redact.DEFAULT_MASK)))
    return lambda tag, time, record: redactor.redact_record(record)


# --- enrich -----------------------------------------------------------------------------------
DEFAULT_BUCKETS_MS = (10, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


def duration_bucket(ms: float, buckets: tuple[float, ...] = DEFAULT_BUCKETS_MS) -> str:
    """``le_<n>ms`` for the smallest bucket that holds ``ms``; ``gt_<last>ms`` past them."""
    for bound in buckets:
        if ms <= bound:
            return f"le_{bound:g}ms"
    return f"gt_{buckets[-1]:g}ms"


def make_enrich(options: Mapping[str, Any]) -> FilterFn:
    """Add ``host``, ``path``, ``query``, ``status_class`` and ``duration_bucket`` under ``key``."""
    _only("enrich", options, {"key", "buckets"})
    key = str(options.get("key", "enrich"))
    raw = options.get("buckets", DEFAULT_BUCKETS_MS)
    try:
        buckets = tuple(sorted(float(b) for b in raw))
    except (TypeError, ValueError):
        raise PluginError("enrich: 'buckets' must be a list of milliseconds") from None
    if not buckets:
        raise PluginError("enrich: 'buckets' must not be empty")

    def run(record: Record) -> Record:
        req = record.get("request") if isinstance(record.get("request"), Mapping) else {}
        res = record.get("response") if isinstance(record.get("response"), Mapping) else {}
        assert isinstance(req, Mapping) and isinstance(res, Mapping)
        parts = urlsplit(str(req.get("url") or ""))
        extra: dict[str, Any] = {
            "host": parts.hostname or req.get("authority") or "",
            "path": parts.path or req.get("path") or "",
            "query": parts.query,
        }
        status = res.get("status")
        if isinstance(status, int) and 100 <= status <= 999:
            extra["status_class"] = f"{status // 100}xx"
        duration = record.get("duration_ms")
        if isinstance(duration, (int, float)) and not isinstance(duration, bool):
            extra["duration_bucket"] = duration_bucket(duration, buckets)
        return {**record, key: extra}

    return lambda tag, time, record: on_transaction(record, run)


# --- sample -----------------------------------------------------------------------------------
def make_sample(options: Mapping[str, Any]) -> FilterFn:
    """Keep a fraction: ``rate`` (0..1, random, ``seed`` for repeatability) or ``every`` Nth."""
    _only("sample", options, {"rate", "every", "seed"})
    if ("rate" in options) == ("every" in options):
        raise PluginError("sample: give exactly one of 'rate' or 'every'")
    if "every" in options:
        every = options["every"]
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise PluginError("sample: 'every' must be a positive integer")
        counter = [0]

        def nth(tag: str, time: float, record: Record) -> FilterResult:
            counter[0] += 1
            return record if counter[0] % every == 1 or every == 1 else None

        return nth
    rate = options["rate"]
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 <= rate <= 1:
        raise PluginError("sample: 'rate' must be a number from 0 to 1")
    rng = random.Random(options.get("seed"))
    return lambda tag, time, record: record if rng.random() < rate else None


# --- drop / keep by a Qtap rule -----------------------------------------------------------------
def rule_context(record: Mapping[str, Any]) -> dict[str, Any]:
    """The rulekit fields (qtap.md 2.4, current generation) a transaction record provides."""
    req = record.get("request") if isinstance(record.get("request"), Mapping) else {}
    res = record.get("response") if isinstance(record.get("response"), Mapping) else {}
    meta = record.get("metadata") if isinstance(record.get("metadata"), Mapping) else {}
    assert isinstance(req, Mapping) and isinstance(res, Mapping) and isinstance(meta, Mapping)

    def headers(part: Mapping[str, Any]) -> dict[str, Any]:
        h = part.get("headers")
        if not isinstance(h, Mapping):
            return {}
        return {str(k).lower(): v for k, v in h.items() if not str(k).startswith(":")}

    url = str(req.get("url") or "")
    split = urlsplit(url)
    http_req = {"method": req.get("method"), "url": url,
                "path": req.get("path") or split.path,
                "scheme": req.get("scheme") or split.scheme,
                "host": req.get("authority") or split.netloc, "headers": headers(req)}
    http_res = {"status": res.get("status"), "headers": headers(res)}
    exe = str(meta.get("process_exe") or "")
    ctx: dict[str, Any] = {
        "http": {"req": {k: v for k, v in http_req.items() if v not in (None, "")},
                 "res": {k: v for k, v in http_res.items() if v is not None}},
        "src": {"process": {"path": exe, "binary": exe.rsplit("/", 1)[-1]}} if exe else {},
    }
    for key in ("direction",):
        if record.get(key):
            ctx[key] = record[key]
    if req.get("protocol"):
        ctx["protocol"] = req["protocol"]
    if meta.get("endpoint_id"):
        ctx["dst"] = {"domain": meta["endpoint_id"]}
    return ctx


def _make_rule_filter(name: str, keep: bool) -> Callable[[Mapping[str, Any]], FilterFn]:
    def factory(options: Mapping[str, Any]) -> FilterFn:
        from qtap_fluent.qtap.rulekit import RuleSyntaxError, compile_rule

        _only(name, options, {"rule", "macros"})
        source = options.get("rule")
        if not isinstance(source, str) or not source.strip():
            raise PluginError(f"{name}: 'rule' (a Qtap rule expression) is required")
        macros = options.get("macros") or {}
        try:
            rule = compile_rule(source, macros)
        except RuleSyntaxError as exc:
            raise PluginError(f"{name}: rule {source!r}: {exc}") from None

        def run(record: Record) -> Record | None:
            hit = rule.matches(rule_context(record))
            return record if hit == keep else None

        return lambda tag, time, record: on_transaction(record, run)

    factory.__doc__ = (f"{'Keep only' if keep else 'Drop'} records whose transaction matches "
                       f"the Qtap rule expression in 'rule' (errors count as no match).")
    return factory


def _only(name: str, options: Mapping[str, Any], known: set[str]) -> None:
    extra = sorted(set(options) - known)
    if extra:
        raise PluginError(f"{name}: unknown option(s): {', '.join(map(str, extra))}; "
                          f"known: {', '.join(sorted(known))}")


def _no_options(name: str, options: Mapping[str, Any]) -> None:
    _only(name, options, set())


#: Built-in filters by name.
FILTERS: Mapping[str, Callable[[Mapping[str, Any]], FilterFn]] = {
    "decode_body": make_decode_body,
    "redact": make_redact,
    "enrich": make_enrich,
    "sample": make_sample,
    "drop": _make_rule_filter("drop", keep=False),
    "keep": _make_rule_filter("keep", keep=True),
}
