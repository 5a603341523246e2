"""Exchange -> Qtap record at a capture level, and the rule fields of qtap.md §2.4.

Levels (qtap.md §3.2): ``summary`` clears headers and bodies, ``headers`` clears bodies, ``full``
keeps everything; ``none`` emits nothing (the policy never calls us for it).
"""

from __future__ import annotations

import os
from typing import Any

from qtap_fluent.agent.assembler import Exchange
from qtap_fluent.records import (
    Headers,
    HttpTransaction,
    Metadata,
    Request,
    Response,
    b64,
    fast_new,
    rfc3339nano,
)

NONE, SUMMARY, HEADERS, FULL = "none", "summary", "headers", "full"
LEVELS = (NONE, SUMMARY, HEADERS, FULL)
#: ``details`` is Qtap's legacy spelling of ``headers`` (qtap.md §1.3).
LEVEL_ALIASES = {"details": HEADERS}

_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_canon_cache: dict[str, str] = {}


def canonical(name: str) -> str:
    """Go ``textproto.CanonicalMIMEHeaderKey``: ``content-type`` -> ``Content-Type``.

    Names with bytes outside the token set (pseudo-headers, spaces) are returned unchanged.
    """
    out = _canon_cache.get(name)
    if out is None:
        raw = name.encode("latin-1", "replace")
        if not raw or any(b not in _TOKEN for b in raw):
            out = name
        else:
            out = "-".join(p[:1].upper() + p[1:].lower() for p in name.split("-"))
        if len(_canon_cache) < 4096:
            _canon_cache[name] = out
    return out


def first_values(headers: Headers) -> dict[str, str]:
    """Canonical name -> first value (Qtap keeps the first of repeated headers, §3.1)."""
    out: dict[str, str] = {}
    cached = _canon_cache.get
    for name, value in headers:
        # canonical() leaves pseudo-headers as they are (':' is not a token character)
        key = cached(name) or canonical(name)
        if key not in out:
            out[key] = value
    return out


def split_authority(authority: str) -> str:
    """``host:port`` / ``[v6]:port`` -> host."""
    if authority.startswith("["):
        return authority[1:authority.find("]")] if "]" in authority else authority
    host, sep, port = authority.rpartition(":")
    return host if sep and port.isdigit() else authority


def _is_ip(host: str) -> bool:
    return host.replace(".", "").isdigit() or ":" in host


#: authority -> domain ("" for an address): connections repeat their Host for every request.
_domains: dict[str, str] = {}


class Parts:
    """Derived request facts shared by the record and the rule context."""

    __slots__ = ("authority", "domain", "endpoint", "path", "scheme", "target", "url")

    def __init__(self, ex: Exchange) -> None:
        req = ex.request
        target = req.target
        self.scheme = "https" if ex.tls else "http"
        authority = req.authority
        if target.startswith(("http://", "https://")):  # absolute-form (RFC 9112 §3.2.2)
            rest = target.partition("://")[2]
            host, slash, tail = rest.partition("/")
            authority = authority or host
            target = slash + tail
        if not authority:
            authority = ex.sni or (f"{ex.remote.ip}:{ex.remote.port}" if ex.remote else "")
        self.authority = authority
        self.target = target
        if not target.startswith("/"):
            target = ""  # authority-form (CONNECT) or asterisk-form: no path (RFC 9112 §3.2)
        q = target.find("?")
        self.path = target if q < 0 else target[:q]
        self.url = f"{self.scheme}://{authority}{target}" if authority else target
        domain = _domains.get(authority)
        if domain is None:
            host = split_authority(authority)
            domain = "" if not host or _is_ip(host) else host.lower()
            if len(_domains) < 4096:
                _domains[authority] = domain
        self.domain = domain
        self.endpoint = self.domain or ex.sni or (ex.remote.ip if ex.remote else "")


_tags_cache: dict[tuple[str, str, bool, bool], tuple[str, ...]] = {}


def tags(ex: Exchange) -> tuple[str, ...]:
    """``bin:<name>``, ``protocol:<p>`` and, when a body was cut, ``truncated:<side>-body``
    (Qtap's record has no truncation flag; tags are where it fits without a new key)."""
    key = (ex.exe, ex.protocol, ex.request_body is not None and ex.request_body.truncated,
           ex.response_body is not None and ex.response_body.truncated)
    out = _tags_cache.get(key)
    if out is None:
        parts = [f"bin:{os.path.basename(ex.exe)}"] if ex.exe else []
        parts.append(f"protocol:{ex.protocol}")
        if key[2]:
            parts.append("truncated:request-body")
        if key[3]:
            parts.append("truncated:response-body")
        out = tuple(parts)
        if len(_tags_cache) < 4096:
            _tags_cache[key] = out
    return out


#: Keys of the record map written even when empty (records.py: not omitempty).
_ALWAYS = frozenset({"metadata", "request", "response", "transaction_time", "method", "url"})
_new_transaction = fast_new(HttpTransaction)
_new_metadata = fast_new(Metadata)
_new_request = fast_new(Request)
_new_response = fast_new(Response)


def record(ex: Exchange, level: str, parts: Parts | None = None) -> HttpTransaction:
    """The Qtap record of ``ex`` at ``level`` (summary, headers or full).

    One pass: the typed record and the map ``to_dict`` would give are built together and the
    map rides along (``HttpTransaction.with_map``), so encoding does not walk the record again.
    The map follows ``records``' omitempty rules; tests compare it with ``to_dict``.
    """
    p = parts or Parts(ex)
    req, res = ex.request, ex.response
    rq = first_values(req.headers)
    rs = first_values(res.headers) if res is not None else {}
    user_agent = rq.get("User-Agent", "")
    req_type = rq.get("Content-Type", "")
    res_type = rs.get("Content-Type", "")
    req_headers: Headers = ()
    res_headers: Headers = ()
    if level != SUMMARY:  # the maps are ours: add the pseudo-headers in place
        if req.version != "2":
            rq.pop("Host", None)  # Go's net/http moves Host out of the header map
        rq.setdefault(":authority", p.authority)
        rq.setdefault(":method", req.method)
        rq.setdefault(":path", p.target)
        rq.setdefault(":scheme", p.scheme)
        req_headers = tuple(sorted(rq.items()))  # Go sorts map keys; names are unique here
        if res is not None:
            rs.setdefault(":status", str(res.status))
            te = rs.get("Transfer-Encoding")
            if te:
                rs[":transfer-encoding"] = te
            res_headers = tuple(sorted(rs.items()))
    req_body = res_body = None
    if level == FULL:
        if ex.request_body is not None:
            req_body = ex.request_body.data
        if ex.response_body is not None:
            res_body = ex.response_body.data
    duration = 0
    if ex.response_ts_ns and ex.request_ts_ns:
        duration = max(1, (ex.response_ts_ns - ex.request_ts_ns) // 1_000_000)
    pid = str(ex.pid) if ex.pid else ""
    tag_list = tags(ex)
    # Positional, in field order (records.fast_new: keyword arguments cost more than the
    # objects themselves); the field names are in the comments.
    metadata = _new_metadata(
        pid, ex.exe,  # process_id, process_exe
        "", "", "", "",  # container_name, container_image, pod_name, pod_namespace
        ex.bytes_sent, ex.bytes_received, "",  # bytes_sent, bytes_received, request_id
        ex.connection_id, p.endpoint, tag_list)  # connection_id, endpoint_id, tags
    request = _new_request(
        req.method, p.url, p.scheme, p.path,  # method, url, scheme, path
        p.authority, ex.protocol, ex.request_id,  # authority, protocol, request_id
        user_agent, req_type, req_headers, req_body)  # user_agent, content_type, headers, body
    response = _new_response(ex.status, res_type, res_headers, res_body)  # same names
    rec = _new_transaction(
        metadata, request, response,  # metadata, request, response
        ex.end_ts_ns, duration, ex.direction,  # transaction_time_ns, duration_ms, direction
        ex.container_id)  # container_id

    # -- the same record as the map to_dict gives (records.py: key order and omitempty) -------
    # Dict displays for the keys that are rarely empty (one build step instead of a test and
    # a store per key), filtered in the rare case one is empty; then the often empty ones.
    exe, sent, received, cid, endpoint = ex.exe, ex.bytes_sent, ex.bytes_received, \
        ex.connection_id, p.endpoint
    m: dict[str, Any] = {"process_id": pid, "process_exe": exe, "bytes_sent": sent,
                         "bytes_received": received, "connection_id": cid,
                         "endpoint_id": endpoint, "tags": list(tag_list)}
    if not (pid and exe and sent and received and cid and endpoint and tag_list):
        m = {k: v for k, v in m.items() if v}  # every metadata key is omitempty
    q: dict[str, Any] = {"method": req.method, "url": p.url, "scheme": p.scheme, "path": p.path,
                         "authority": p.authority, "protocol": ex.protocol,
                         "request_id": ex.request_id}
    if not (p.scheme and p.path and p.authority and ex.protocol and ex.request_id):
        q = {k: v for k, v in q.items() if v or k in _ALWAYS}
    if user_agent:
        q["user_agent"] = user_agent
    if req_type:
        q["content_type"] = req_type
    if req_headers:
        q["headers"] = dict(req_headers)
    if req_body:
        q["body"] = b64(req_body)
    r: dict[str, Any] = {"status": ex.status}
    if res_type:
        r["content_type"] = res_type
    if res_headers:
        r["headers"] = dict(res_headers)
    if res_body:
        r["body"] = b64(res_body)
    d: dict[str, Any] = {"metadata": m, "request": q, "response": r,
                         "transaction_time": rfc3339nano(ex.end_ts_ns), "duration_ms": duration,
                         "direction": ex.direction}
    if not (duration and ex.direction):
        d = {k: v for k, v in d.items() if v or k in _ALWAYS}
    return rec.with_map(d)


def _lower_first(headers: Headers) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers:
        if name[:1] != ":":
            out.setdefault(name.lower(), value)
    return out


def rule_context(ex: Exchange, parts: Parts | None = None) -> dict[str, Any]:
    """The fields rules see (qtap.md §2.4, current generation), as nested maps.

    Absent facts are absent keys, so rulekit reports them missing (an error: no match).
    """
    p = parts or Parts(ex)
    req = {"method": ex.request.method, "path": p.path, "scheme": p.scheme,
           "host": p.authority, "url": p.url, "headers": _lower_first(ex.request.headers)}
    http: dict[str, Any] = {"req": req}
    if ex.response is not None:
        res_headers = _lower_first(ex.response.headers)
        res: dict[str, Any] = {"status": ex.status, "headers": res_headers}
        if "transfer-encoding" in res_headers:
            res["transfer-encoding"] = res_headers["transfer-encoding"]
        http["res"] = res
    else:
        http["res"] = {"status": ex.status, "headers": {}}
    binary = os.path.basename(ex.exe)
    src: dict[str, Any] = {"process": {"path": ex.exe, "binary": binary}}
    dst: dict[str, Any] = {}
    local, remote = (ex.local, ex.remote)
    if local is not None:
        src["ip"], src["port"] = local.ip, local.port
    if remote is not None:
        dst["ip"], dst["port"] = remote.ip, remote.port
    if p.domain:
        dst["domain"] = p.domain
    if ex.container_id:
        src["container"] = {"id": ex.container_id[:12]}
    ctx: dict[str, Any] = {
        "http": http, "protocol": ex.protocol, "direction": ex.direction, "type": "tcp",
        "tags": list(tags(ex)), "src": src, "dst": dst,
    }
    if ex.tls:
        tls: dict[str, Any] = {"enabled": True}
        if ex.sni:
            tls["sni"] = ex.sni
        ctx["tls"] = tls
    return ctx
