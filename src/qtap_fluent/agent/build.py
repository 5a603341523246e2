"""Exchange -> Qtap record at a capture level, and the rule fields of qtap.md §2.4.

Levels (qtap.md §3.2): ``summary`` clears headers and bodies, ``headers`` clears bodies, ``full``
keeps everything; ``none`` emits nothing (the policy never calls us for it).
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable
from typing import Any

from qtap_fluent.agent.assembler import Exchange
from qtap_fluent.agent.protocols.events import ResponseHead
from qtap_fluent.records import Headers, b64, rfc3339nano
from qtap_fluent.redact import Redactor

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
        self.scheme = scheme = "https" if ex.tls else "http"
        authority = req.authority
        if target[:1] != "/" and target.startswith(("http://", "https://")):
            # absolute-form (RFC 9112 §3.2.2)
            rest = target.partition("://")[2]
            host, slash, tail = rest.partition("/")
            authority = authority or host
            target = slash + tail
        if not authority:
            authority = ex.sni or (f"{ex.remote.ip}:{ex.remote.port}" if ex.remote else "")
        self.authority = authority
        self.target = path = target
        if target[:1] != "/":
            path = ""  # authority-form (CONNECT) or asterisk-form: no path (RFC 9112 §3.2)
        q = path.find("?")
        self.path = path if q < 0 else path[:q]
        self.url = f"{scheme}://{authority}{path}" if authority else path
        domain = _domains.get(authority)
        if domain is None:
            host = split_authority(authority)
            domain = "" if not host or _is_ip(host) else host.lower()
            if len(_domains) < 4096:
                _domains[authority] = domain
        self.domain = domain
        self.endpoint = domain or ex.sni or (ex.remote.ip if ex.remote else "")


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


# -- header maps by plan ------------------------------------------------------------------------
# The record's header maps are the first value per canonical name plus pseudo-headers, sorted
# (Go sorts map keys). Keep-alive clients and servers send the same header names every time,
# so the work that depends on the names only (canonical forms, which name is the User-Agent,
# the sorted order) is done once per name tuple: a plan. Per record, dict(headers) and the
# plan's itemgetter in C, then zip back to the sorted canonical names: ~7,000 instructions per
# side cheaper than canonicalising, inserting and sorting each time (callgrind). A plan needs
# unique names (dict() keeps the last of repeated ones; Qtap keeps the first) and no
# pseudo-header among them: other header blocks (HTTP/2's, repeats) take the general path.
# Plans are found by the raw names in order, repeats included (no dict built to find one),
# and give the User-Agent, Content-Type and Transfer-Encoding values by position in the
# header tuple (-1 when absent).

#: ":authority", ":method", ":path", ":scheme": what the request map adds (HTTP/1 requests).
_REQUEST_PSEUDO = (":authority", ":method", ":path", ":scheme")
#: A request plan: sorted map keys, getter of their values, position of User-Agent and of
#: Content-Type (-1 when absent), picker (``_picker``). A response plan: keys, getter, the same
#: with ":transfer-encoding" added, position of Content-Type and of Transfer-Encoding, picker.
_Get = Callable[[dict[str, str]], tuple[str, ...]]
_Pick = Callable[[Headers], Headers] | None
_RequestPlan = tuple[tuple[str, ...], _Get, int, int, _Pick]
_ResponsePlan = tuple[tuple[str, ...], _Get, tuple[str, ...], _Get, int, int, _Pick]
_request_plans: dict[tuple[str, ...], _RequestPlan | None] = {}
_response_plans: dict[tuple[str, ...], _ResponsePlan | None] = {}
_PLANS_MAX = 4096
_UNKNOWN: Any = object()
#: A plan's key is ``tuple(map(_name_of, headers))``: the raw names in order, without the dict
#: per side that ``tuple(dict(headers))`` built (-2,100 instructions/tx full, -2,500 summary,
#: callgrind).
_name_of = operator.itemgetter(0)


def _position(names: tuple[str, ...], canon: dict[str, str], name: str) -> int:
    raw = canon.get(name)
    return -1 if raw is None else names.index(raw)


def _getter(raw: list[str]) -> Callable[[dict[str, str]], tuple[str, ...]]:
    if len(raw) == 1:  # itemgetter of one key returns the value, not a 1-tuple
        only = raw[0]
        return lambda d: (d[only],)
    return operator.itemgetter(*raw)


def _sorted_plan(pairs: list[tuple[str, str]]) -> tuple[
        tuple[str, ...], Callable[[dict[str, str]], tuple[str, ...]]]:
    pairs.sort()  # canonical names are unique: the raw names never decide the order
    return tuple(c for c, _ in pairs), _getter([n for _, n in pairs])


def _canon_names(names: tuple[str, ...]) -> dict[str, str] | None:
    """Canonical name -> raw name, or None when a plan cannot serve these names."""
    canon = {canonical(n): n for n in names}
    if len(canon) != len(names) or any(c[:1] == ":" for c in canon):
        return None
    return canon


def _picker(names: tuple[str, ...], skip: str) -> Callable[[Headers], Headers] | None:
    """When every name (but ``skip``) is already canonical and sorts after the pseudo-headers
    (first character above ':'), the header map is the pseudo-headers followed by the header
    pairs themselves in sorted order: this picks those pairs from the header tuple by position
    (``names`` are its names, in order). ~4,000 instructions per side cheaper than mapping the
    values to canonical names (callgrind). None when the names do not allow it."""
    if any(canonical(n) != n or n[:1] <= ":" for n in names if n != skip):
        return None
    order = sorted((n, i) for i, n in enumerate(names) if n != skip)
    if not order:
        return lambda headers: ()
    if len(order) == 1:
        only = order[0][1]
        return lambda headers: (headers[only],)
    return operator.itemgetter(*(i for _, i in order))


def _request_plan(names: tuple[str, ...]) -> _RequestPlan | None:
    canon = _canon_names(names)
    if canon is None:
        return None
    pairs = [(c, n) for c, n in canon.items() if c != "Host"] + [(p, p) for p in _REQUEST_PSEUDO]
    keys, get = _sorted_plan(pairs)
    return keys, get, _position(names, canon, "User-Agent"), \
        _position(names, canon, "Content-Type"), _picker(names, "Host")


def _response_plan(names: tuple[str, ...]) -> _ResponsePlan | None:
    canon = _canon_names(names)
    if canon is None:
        return None
    pairs = [(c, n) for c, n in canon.items()] + [(":status", ":status")]
    keys, get = _sorted_plan(list(pairs))
    keys_te, get_te = _sorted_plan(pairs + [(":transfer-encoding", ":transfer-encoding")])
    return keys, get, keys_te, get_te, _position(names, canon, "Content-Type"), \
        _position(names, canon, "Transfer-Encoding"), _picker(names, "")


def _plan(cache: dict[tuple[str, ...], Any], names: tuple[str, ...],
          make: Callable[[tuple[str, ...]], Any]) -> Any:
    plan = make(names)
    if len(cache) >= _PLANS_MAX:
        cache.clear()
    cache[names] = plan
    return plan


def _request_headers(ex: Exchange, p: Parts, level: str) -> tuple[str, str, dict[str, str]]:
    """User-Agent, Content-Type and the header map (empty at ``summary``), the general way."""
    req = ex.request
    rq = first_values(req.headers)
    if level == SUMMARY:
        return rq.get("User-Agent", ""), rq.get("Content-Type", ""), {}
    if req.version != "2":
        rq.pop("Host", None)  # Go's net/http moves Host out of the header map
    rq.setdefault(":authority", p.authority)
    rq.setdefault(":method", req.method)
    rq.setdefault(":path", p.target)
    rq.setdefault(":scheme", p.scheme)
    return rq.get("User-Agent", ""), rq.get("Content-Type", ""), dict(sorted(rq.items()))


def _response_headers(res: ResponseHead, level: str) -> tuple[str, dict[str, str]]:
    """Content-Type and the header map (empty at ``summary``), the general way."""
    rs = first_values(res.headers)
    if level == SUMMARY:
        return rs.get("Content-Type", ""), {}
    rs.setdefault(":status", str(res.status))
    te = rs.get("Transfer-Encoding")
    if te:
        rs[":transfer-encoding"] = te
    return rs.get("Content-Type", ""), dict(sorted(rs.items()))


#: Decimal text of process ids and status codes: a host has a few of each, and a dict lookup
#: is cheaper than ``str(int)`` (-700 instructions/tx full, -400 summary, callgrind). Bounded.
_int_text: dict[int, str] = {}


def _text_of(n: int) -> str:
    """``str(n)``, remembered (``record_map`` looks ``_int_text`` up first)."""
    text = str(n)
    if len(_int_text) < 4096:
        _int_text[n] = text
    return text


#: Keys of the record map written even when empty (records.py: not omitempty).
_ALWAYS = frozenset({"metadata", "request", "response", "transaction_time", "method", "url"})


def record_map(ex: Exchange, level: str, parts: Parts | None = None,
               redactor: Redactor | None = None) -> dict[str, Any]:
    """The Qtap map of ``ex`` at ``level`` (summary, headers or full), as
    ``HttpTransaction.to_dict`` gives it: keys in ``records``' order with its omitempty rules;
    redacted by ``redactor`` when one is given: ``Redactor.redact_built`` where header plans
    built both header maps (it relies on their keys and on the raw bodies), else
    ``Redactor.redact_map``.

    The capture core's hot path: the map is all the outputs need (its JSON line, the forward
    shapes), so no typed record is built here (the four ``records`` objects cost ~12,000
    instructions per transaction, callgrind). The map is the caller's: redaction masks it in
    place (``Redactor.redact_map``). Tests compare it with ``records.from_dict(...).to_dict()``.
    """
    p = parts or Parts(ex)
    req, res = ex.request, ex.response
    # Dict displays for the keys that are rarely empty (one build step instead of a test and
    # a store per key), filtered in the rare case one is empty; then the often empty ones.
    exe, sent, received, cid, endpoint = ex.exe, ex.bytes_sent, ex.bytes_received, \
        ex.connection_id, p.endpoint
    pid_n = ex.pid
    pid = (_int_text.get(pid_n) or _text_of(pid_n)) if pid_n else ""
    tag_list = tags(ex)
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
    # Header maps by plan when the names allow (see _request_plan), else the general way.
    hdrs = req.headers
    plan = None
    if req.version != "2":  # HTTP/2 header blocks carry their pseudo-headers: no plan
        plan = _request_plans.get(names := tuple(map(_name_of, hdrs)), _UNKNOWN)
        if plan is _UNKNOWN:
            plan = _plan(_request_plans, names, _request_plan)
    req_keys = res_keys = None  # the header maps' keys, when a plan built them
    rq_raw: bytes | None = None  # the bodies the map holds (level full), for the redactor
    rs_raw: bytes | None = None
    if plan is not None:
        keys, get, ua_at, ct_at, pick = plan
        user_agent = hdrs[ua_at][1] if ua_at >= 0 else ""
        req_type = hdrs[ct_at][1] if ct_at >= 0 else ""
        if level != SUMMARY:
            req_keys = keys
            if pick is not None:
                req_headers = {":authority": p.authority, ":method": req.method,
                               ":path": p.target, ":scheme": p.scheme}
                req_headers.update(pick(hdrs))
            else:
                by_name = dict(hdrs)
                by_name[":authority"] = p.authority
                by_name[":method"] = req.method
                by_name[":path"] = p.target
                by_name[":scheme"] = p.scheme
                req_headers = dict(zip(keys, get(by_name)))
    else:
        user_agent, req_type, req_headers = _request_headers(ex, p, level)
    if user_agent:
        q["user_agent"] = user_agent
    if req_type:
        q["content_type"] = req_type
    r: dict[str, Any] = {"status": ex.status}
    res_headers: dict[str, str] = {}
    rplan = None
    if res is not None:
        hdrs = res.headers
        # (HTTP/2's :status is not among them: plans serve both)
        rplan = _response_plans.get(names := tuple(map(_name_of, hdrs)), _UNKNOWN)
        if rplan is _UNKNOWN:
            rplan = _plan(_response_plans, names, _response_plan)
        if rplan is not None:
            keys, get, keys_te, get_te, ct_at, te_at, pick = rplan
            res_type = hdrs[ct_at][1] if ct_at >= 0 else ""
            if level != SUMMARY:
                te = hdrs[te_at][1] if te_at >= 0 else ""
                if pick is not None:
                    status = res.status
                    res_headers = {":status": _int_text.get(status) or _text_of(status)}
                    if te:
                        res_headers[":transfer-encoding"] = te  # sorts after ":status"
                        keys = keys_te
                    res_headers.update(pick(hdrs))
                else:
                    by_name = dict(hdrs)
                    by_name[":status"] = str(res.status)
                    if te:
                        by_name[":transfer-encoding"] = te
                        keys, get = keys_te, get_te
                    res_headers = dict(zip(keys, get(by_name)))
                res_keys = keys
        else:
            res_type, res_headers = _response_headers(res, level)
        if res_type:
            r["content_type"] = res_type
    if level != SUMMARY:
        q["headers"] = req_headers
        if res_headers:
            r["headers"] = res_headers
        if level == FULL:
            body = ex.request_body
            if body is not None and (rq_raw := body.data):
                q["body"] = b64(rq_raw)
            body = ex.response_body
            if body is not None and (rs_raw := body.data):
                r["body"] = b64(rs_raw)
    duration = 0
    if ex.response_ts_ns and ex.request_ts_ns:
        duration = max(1, (ex.response_ts_ns - ex.request_ts_ns) // 1_000_000)
    d: dict[str, Any] = {"metadata": m, "request": q, "response": r,
                         "transaction_time": rfc3339nano(ex.end_ts_ns), "duration_ms": duration,
                         "direction": ex.direction}
    if not (duration and ex.direction):
        d = {k: v for k, v in d.items() if v or k in _ALWAYS}
    if redactor is not None:
        if plan is not None and (res is None or rplan is not None):
            redactor.redact_built(q, r, req_keys, res_keys, rq_raw, rs_raw)
        else:
            redactor.redact_map(d, rq_raw, rs_raw)
    return d



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
