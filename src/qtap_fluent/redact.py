"""Redaction of Qtap transaction records: headers, query parameters and JSON body keys.

Sans-I/O: records in, records out. The agent (redaction at source), ``serve``'s ``redact`` filter
and the bundled Fluent Bit Lua filter (``assets/lua/redact.lua``, whose default lists are rendered
from the constants below by ``qtap_fluent.fluentbit.lua.filters``) all follow the same rules:

* names compare case-insensitively; a name holding ``*`` is a glob (``*password*``); ``patterns``
  are extra regular expressions searched in the lower-cased name;
* a matching header's value becomes the mask, whatever its type;
* in ``request.url``, ``request.path`` and the :data:`URL_HEADERS`, the value of a matching
  query parameter (name compared after percent-decoding) becomes the mask; the rest of the URL,
  parameter order and parameters without ``=`` are kept byte for byte;
* bodies are base64 in Qtap records (``qtap.md`` §3.1): decoded, and if the bytes are JSON the
  value of every member whose key matches (at any depth) becomes the JSON string mask, then the
  body is re-encoded; other bytes are kept. A body that is not valid base64 is treated as text
  (Qtap's ``access_logs`` prints bodies as plain strings). JSON nested deeper than
  :data:`MAX_JSON_DEPTH` is replaced whole by the mask (fail closed);
* a record whose ``log`` is still the JSON line (Docker's fluentd log driver) is redacted inside
  that string.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qtap_fluent.records import HttpTransaction

#: Headers that carry credentials or session state (RFC 9110 §11.6.2, §11.7.2; RFC 6265).
DEFAULT_HEADERS: tuple[str, ...] = (
    "Authorization",
    "Proxy-Authorization",
    "Cookie",
    "Set-Cookie",
    "X-Api-Key",
    "Api-Key",
    "X-Auth-Token",
    "X-Amz-Security-Token",
    "X-Csrf-Token",
    "X-Xsrf-Token",
)

#: Query parameters that carry credentials: OAuth 2.0 (RFC 6749 §4.1.2, RFC 6750 §2.3), API keys,
#: and presigned-URL signatures (AWS SigV4 ``X-Amz-*``, GCS ``X-Goog-*``).
DEFAULT_QUERY_PARAMS: tuple[str, ...] = (
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "auth",
    "code",
    "api_key",
    "apikey",
    "key",
    "password",
    "passwd",
    "secret",
    "client_secret",
    "signature",
    "sig",
    "session",
    "sessionid",
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
    "X-Goog-Signature",
    "X-Goog-Credential",
)

#: JSON body keys. Exact token names rather than ``*token*``: LLM APIs return counts such as
#: ``total_tokens`` that must stay readable.
DEFAULT_JSON_KEYS: tuple[str, ...] = (
    "*password*",
    "passwd",
    "pwd",
    "*secret*",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "auth_token",
    "session_token",
    "api_key",
    "apikey",
    "private_key",
    "authorization",
    "cookie",
    "credit_card",
    "card_number",
    "cvv",
    "ssn",
)

#: Headers whose value is a URL or request target: their query is redacted like the URL's
#: (an OAuth ``code`` travels in ``Location``, RFC 6749 §4.1.2; HTTP/2 ``:path`` keeps the query).
URL_HEADERS: tuple[str, ...] = (":path", "Location", "Content-Location", "Referer")

DEFAULT_MASK = "[REDACTED]"

#: Deeper JSON is masked whole instead of parsed (bounded recursion, fail closed).
MAX_JSON_DEPTH = 200


def glob_to_regex(name: str) -> str:
    """``*password*`` -> ``^.*password.*$`` (lower-cased, everything but ``*`` literal)."""
    return "^" + ".*".join(re.escape(part) for part in name.lower().split("*")) + "$"


def glob_to_lua_pattern(name: str) -> str:
    """The same glob as an anchored Lua pattern (``%`` escapes Lua's magic characters)."""
    magic = re.compile(r"([\^$()%.\[\]+\-?])")
    return "^" + ".*".join(magic.sub(r"%\1", part) for part in name.lower().split("*")) + "$"


#: Names whose verdict a ``_Names`` remembers (header names and JSON keys repeat endlessly).
MEMO_LIMIT = 4096
#: Longest URL whose redaction a ``Redactor`` remembers (bounds the memo's memory).
MEMO_MAX_URL = 1024


class _Names:
    """A case-insensitive name set with globs and regular expressions."""

    __slots__ = ("_memo", "exact", "needles", "regexes")

    def __init__(self, names: Iterable[str], patterns: Iterable[str]) -> None:
        names = list(names)
        pats = list(patterns)
        self.exact: frozenset[str] = frozenset(n.lower() for n in names if "*" not in n)
        rx = [glob_to_regex(n) for n in names if "*" in n] + pats
        self.regexes = [re.compile(p, re.IGNORECASE) for p in rx]
        # A pure function of the name, so sharing the memo between threads is harmless.
        self._memo: dict[str, bool] = {}
        #: Finds the lower-case ASCII strings one of which every matching ASCII name contains
        #: (an exact name, the longest literal piece of a glob); None when a regular expression, a bare
        #: ``*`` or a non-ASCII name (case folding beyond ASCII, e.g. U+017F) could match names
        #: without any of them.
        self.needles: re.Pattern[str] | None = None
        needles = sorted(self.exact) + [max(n.lower().split("*"), key=len)
                                        for n in names if "*" in n]
        if needles and not pats and all(needles) and all(n.isascii() for n in needles):
            # A needle holding another is redundant (``access_token`` holds ``token``): fewer
            # alternatives, a faster search.
            needles = [n for n in needles if not any(m != n and m in n for m in needles)]
            self.needles = re.compile("|".join(re.escape(n) for n in sorted(set(needles))))

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        hit = self._memo.get(name)
        if hit is None:
            low = name.lower()
            hit = low in self.exact or any(r.search(low) for r in self.regexes)
            if len(self._memo) < MEMO_LIMIT:
                self._memo[name] = hit
        return hit


#: Canonical base64 (RFC 4648 §4, padded), as Go's encoding/json writes []byte; checked
#: explicitly because binascii's leniency differs between Python versions.
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")

_URL_HEADERS = frozenset(h.lower() for h in URL_HEADERS)

_PCT = re.compile(r"%([0-9A-Fa-f]{2})")


def _unquote(name: str) -> str:
    """Percent-decode a query parameter name (``+`` is a space in form encoding)."""
    if "%" not in name and "+" not in name and name.isascii():
        return name  # nothing to decode (ASCII survives the latin-1/UTF-8 round trip below)
    raw = _PCT.sub(lambda m: chr(int(m.group(1), 16)), name.replace("+", " "))
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeDecodeError, UnicodeEncodeError):
        return raw


# RFC 8259 tokens. Strings exclude raw control characters (§7).
_WS = re.compile(r"[ \t\n\r]*")
_STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"')
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_LITERAL = re.compile(r"true|false|null")
_BRACKETS = re.compile(r"[{}\[\]]")
#: JSON's whitespace characters (RFC 8259 §2), one at a time.
_JSON_SPACE = frozenset(" \t\r\n")
#: What _redact_text takes for JSON: optional whitespace, then an object or an array.
_JSON_START = re.compile(rb"[ \t\r\n]*[{\[]")
#: The usual first byte of a JSON body (tested before the pattern above).
_JSON_OPENERS = (b"{", b"[")


class _TooDeep(Exception):
    pass


class _KeyMatch(Exception):
    """A JSON member key matched (raised from the decoder's hook to stop parsing early)."""


class _NotJson(Exception):
    pass


#: The header plan of a map with nothing to mask or rewrite (``Redactor.header_plan``).
_CLEAN_PLAN: tuple[tuple[Any, ...], tuple[str, ...]] = ((), ())
#: The plan of the usual request header map: only ``:path`` may hold a query.
_PATH_ONLY: tuple[tuple[Any, ...], tuple[str, ...]] = ((), (":path",))


class Redactor:
    """Masks secrets in transaction records; immutable after construction, safe to share."""

    def __init__(
        self,
        headers: Iterable[str] = DEFAULT_HEADERS,
        query_params: Iterable[str] = DEFAULT_QUERY_PARAMS,
        json_keys: Iterable[str] = DEFAULT_JSON_KEYS,
        patterns: Iterable[str] = (),
        mask: str = DEFAULT_MASK,
    ) -> None:
        pats = list(patterns)
        self.headers = _Names(headers, pats)
        self.query_params = _Names(query_params, pats)
        self.json_keys = _Names(json_keys, pats)
        self.mask = mask
        self._mask_json = json.dumps(mask, ensure_ascii=False)
        # Built once: json.loads with a hook would build a decoder per call. The hook keeps no
        # state (it raises on a match), so sharing the Redactor between threads stays safe.
        self._scan_keys = json.JSONDecoder(object_pairs_hook=self._check_keys).decode
        #: URL with a query -> redacted URL: a pure function of the URL (like ``_Names``'
        #: memo), so sharing it between threads is harmless. Queries repeat (a record carries
        #: its query in ``url`` and ``:path``; clients repeat theirs); starts over when full.
        self.url_memo: dict[str, str] = {}
        #: Header name tuple -> (names masked, URL headers), see ``header_plan``.
        self.header_plans: dict[tuple[Any, ...], tuple[tuple[Any, ...], tuple[str, ...]]] = {}

    # -- pieces -------------------------------------------------------------------------------
    def redact_headers(self, headers: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``headers``: matching values masked, queries in URL headers redacted."""
        out: dict[str, Any] = {}
        for name, value in headers.items():
            if name in self.headers:
                out[name] = self.mask
            elif isinstance(value, str) and name.lower() in _URL_HEADERS:
                out[name] = self.redact_url(value)
            else:
                out[name] = value
        return out

    def redact_url(self, url: str) -> str:
        """Mask the values of matching query parameters; everything else is kept as written."""
        q = url.find("?")
        if q < 0:
            return url
        memo = self.url_memo
        out = memo.get(url)
        if out is None:
            out = self._redact_url(url, q)
            if len(memo) >= MEMO_LIMIT:
                memo.clear()
            if len(url) <= MEMO_MAX_URL:
                memo[url] = out
        return out

    def _redact_url(self, url: str, q: int) -> str:
        h = url.find("#", q)
        end = len(url) if h < 0 else h
        query = self.redact_query(url[q + 1 : end])
        return url[: q + 1] + query + url[end:]

    def redact_query(self, query: str) -> str:
        """``a=1&token=x`` -> ``a=1&token=[REDACTED]`` (also form-encoded bodies)."""
        parts = query.split("&")
        changed = False
        for i, part in enumerate(parts):
            eq = part.find("=")
            if eq >= 0 and _unquote(part[:eq]) in self.query_params:
                parts[i] = part[: eq + 1] + self.mask
                changed = True
        return "&".join(parts) if changed else query

    def redact_json_text(self, text: str) -> str | None:
        """``text`` with matching members masked, or None when ``text`` is not JSON."""
        out: list[str] = []
        try:
            end = _ws(text, self._value(text, _ws(text, 0, out), out, 0), out)
            if end != len(text):
                return None
        except _NotJson:
            return None
        except _TooDeep:
            return self._mask_json
        return "".join(out)

    def redact_body(self, body: str, content_type: str = "") -> str:
        """A Qtap body (base64, or plain text when it is not base64), redacted."""
        is_b64 = _BASE64.fullmatch(body) is not None
        if is_b64:
            raw = base64.b64decode(body)
        else:
            raw = body.encode("utf-8", "surrogateescape")
        # JSON is UTF-8 (RFC 8259 §8.1); stray bytes are carried through untouched, as the
        # byte-oriented Lua filter does.
        text = raw.decode("utf-8", "surrogateescape")
        new = self._redact_text(text, content_type)
        if new is None or new == text:
            return body
        if not is_b64:
            return new
        return base64.b64encode(new.encode("utf-8", "surrogateescape")).decode("ascii")

    def _redact_text(self, text: str, content_type: str) -> str | None:
        stripped = text.lstrip(" \t\r\n")
        if stripped[:1] in ("{", "["):
            return self.redact_json_text(text)
        if "x-www-form-urlencoded" in content_type.lower():
            return self.redact_query(text)
        return None

    # -- records ------------------------------------------------------------------------------
    def redact_record(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """A redacted copy of a transaction record (structured, or with a ``log`` JSON line)."""
        out = dict(record)
        log = out.get("log")
        if isinstance(log, str):
            try:
                inner = json.loads(log)
            except ValueError:
                inner = None
            if isinstance(inner, dict):
                red = self.redact_record(inner)
                if red != inner:
                    out["log"] = json.dumps(red, ensure_ascii=False, separators=(",", ":"))
        for side in ("request", "response"):
            part = out.get(side)
            if isinstance(part, Mapping):
                out[side] = self._redact_side(part)
        return out

    def _redact_side(self, part: Mapping[str, Any]) -> dict[str, Any]:
        new = dict(part)
        headers = new.get("headers")
        if isinstance(headers, Mapping):
            new["headers"] = self.redact_headers(headers)
        for key in ("url", "path"):
            if isinstance(new.get(key), str):
                new[key] = self.redact_url(new[key])
        body = new.get("body")
        if isinstance(body, str) and body:
            ctype = new.get("content_type")
            new["body"] = self.redact_body(body, ctype if isinstance(ctype, str) else "")
        return new

    # -- the capture core's maps: redaction in place ------------------------------------------
    def redact_map(self, record: dict[str, Any], request_body: bytes | None = None,
                   response_body: bytes | None = None) -> bool:
        """Redact a transaction map in place; True when something changed.

        ``record`` is a map as ``HttpTransaction.to_dict`` gives it, owned by the caller (the
        capture core builds one per transaction): afterwards it equals what
        ``redact_record(record)`` would have returned, and the return value is exactly
        ``redact_record(record) != record``. ``request_body`` / ``response_body`` are the raw
        bytes behind the base64 ``body`` values when the caller has them: bodies are then
        checked without decoding and rewritten only when a key may match (``redact_built``
        is the capture core's shortcut for the maps it has just built).

        Cheaper than ``redact_record`` because nothing is copied and the usual record (no
        secret) costs a few lookups: URLs are looked at only with a ``?``, header maps through
        a plan per key tuple (``header_plan``), bodies through ``body_unchanged``.
        """
        changed = False
        q = record.get("request")
        if isinstance(q, dict):
            for key in ("url", "path"):
                url = q.get(key)
                if isinstance(url, str) and "?" in url:
                    new = self.url_memo.get(url) or self.redact_url(url)
                    if new != url:
                        q[key] = new
                        changed = True
            if self._redact_part(q, request_body):
                changed = True
        r = record.get("response")
        if isinstance(r, dict) and self._redact_part(r, response_body):
            changed = True
        return changed

    def _redact_part(self, part: dict[str, Any], raw: bytes | None) -> bool:
        """``redact_map`` for one side's headers and body."""
        changed = False
        headers = part.get("headers")
        if isinstance(headers, dict):
            keys = tuple(headers)
            plan = self.header_plans.get(keys) or self.header_plan(keys)
            # (the usual header map's plan is _CLEAN_PLAN: nothing to look at)
            if plan is not _CLEAN_PLAN and self._apply_header_plan(headers, plan):
                changed = True
        elif isinstance(headers, Mapping):
            new_headers = self.redact_headers(headers)
            if new_headers != headers:
                part["headers"] = new_headers
                changed = True
        body = part.get("body")
        if body and isinstance(body, str):
            ctype = part.get("content_type")
            ctype = ctype if isinstance(ctype, str) else ""
            if raw is None or not self.body_unchanged(raw, ctype):
                new = self.redact_body(body, ctype)
                if new != body:
                    part["body"] = new
                    changed = True
        return changed

    def redact_built(self, request: dict[str, Any], response: dict[str, Any],
                     request_keys: tuple[str, ...] | None, response_keys: tuple[str, ...] | None,
                     request_body: bytes | None, response_body: bytes | None) -> None:
        """``redact_map`` for the request and response maps of a record that
        ``agent.build.record_map`` has just built from its header plans (the capture core's hot
        path): the same result with fewer tests, because the builder vouches for the shape.
        Every value is a string; ``path`` holds no query (the builder cuts it at the ``?``) and
        a request header map's ``:path`` is the query-bearing part of ``url``;
        ``request_keys`` / ``response_keys`` are the keys of the header maps in order (None: no
        header map); the raw bodies are given only when the maps hold them (level full)."""
        url = request["url"]
        query = "?" in url
        if query:
            new = self.url_memo.get(url) or self.redact_url(url)
            if new != url:
                request["url"] = new
            elif "?" not in request.get("authority", ""):
                # url is scheme://authority + :path: its query is :path's, unchanged too
                # (-2,000 instructions for the usual URL with a query, callgrind)
                query = False
        plans = self.header_plans
        if request_keys is not None:
            plan = plans.get(request_keys) or self.header_plan(request_keys)
            # _PATH_ONLY, the usual request header map, needs a look only when the URL holds a
            # query that was not kept as is (otherwise :path holds none to mask)
            if plan is not _CLEAN_PLAN and (query or plan is not _PATH_ONLY):
                self._apply_header_plan(request["headers"], plan)
        if response_keys is not None:
            plan = plans.get(response_keys) or self.header_plan(response_keys)
            if plan is not _CLEAN_PLAN:  # the usual response header map: nothing to look at
                self._apply_header_plan(response["headers"], plan)
        # the two sides written out: a loop over them cost ~1,400 instructions per record
        if request_body:
            ctype = request.get("content_type", "")
            if not self.body_unchanged(request_body, ctype):
                request["body"] = self.redact_body(request["body"], ctype)
        if response_body:
            ctype = response.get("content_type", "")
            if not self.body_unchanged(response_body, ctype):
                response["body"] = self.redact_body(response["body"], ctype)

    def _apply_header_plan(self, headers: dict[str, Any],
                           plan: tuple[tuple[Any, ...], tuple[str, ...]]) -> bool:
        """Mask and rewrite a header map as its plan says; True when something changed."""
        changed = False
        masked, urls = plan
        mask = self.mask
        for name in masked:
            if headers[name] != mask:
                headers[name] = mask
                changed = True
        for name in urls:  # a request's :path, Referer; a response's Location
            value = headers[name]
            if isinstance(value, str) and "?" in value:
                new = self.url_memo.get(value) or self.redact_url(value)
                if new != value:
                    headers[name] = new
                    changed = True
        return changed

    def header_plan(self, names: tuple[Any, ...]) -> tuple[tuple[Any, ...], tuple[str, ...]]:
        """For a header map's names: those whose value is masked, and the URL headers among
        the rest (their queries are redacted); ``_CLEAN_PLAN`` when there are neither.
        Keep-alive clients send the same names every time, so the plan is remembered per name
        tuple in ``header_plans`` (bounded like ``_Names``' memo; a pure function of the
        names, so sharing the memo between threads is harmless)."""
        plan = self.header_plans.get(names)
        if plan is None:
            secret = self.headers
            masked = tuple(n for n in names if n in secret)
            urls = tuple(n for n in names if isinstance(n, str) and n not in secret
                         and n.lower() in _URL_HEADERS)
            plan = (masked, urls) if masked or urls else _CLEAN_PLAN
            if plan == _PATH_ONLY:
                plan = _PATH_ONLY  # one object: redact_built tells it by identity
            if len(self.header_plans) >= MEMO_LIMIT:
                self.header_plans.clear()
            self.header_plans[names] = plan
        return plan

    # -- typed records ---------------------------------------------------------------------------
    def leaves_unchanged(self, rec: HttpTransaction) -> bool:
        """True when ``redact_record(rec.to_dict())`` would give the map back unchanged."""
        return not self.redact_map(rec.to_dict(), rec.request.body, rec.response.body)

    def body_unchanged(self, body: bytes | None, content_type: str) -> bool:
        """True when ``redact_body`` would give the base64 of ``body`` back unchanged (the same
        dispatch as ``_redact_text``, on the raw bytes the record holds)."""
        if not body:
            return True
        if body[:1] in _JSON_OPENERS or _JSON_START.match(body) is not None:
            needles = self.json_keys.needles
            if needles is not None and body.isascii():
                text = body.decode("ascii")
                # _json_unchanged's first test, without its decode and its _shallow counts
                # for bodies too short to nest that deep (the usual small API body).
                if ("\\" not in text and needles.search(text.lower()) is None
                        and (len(text) <= MAX_JSON_DEPTH or _shallow(text))):
                    return True
            else:
                text = body.decode("utf-8", "surrogateescape")
            return self._json_unchanged(text)
        if "x-www-form-urlencoded" in content_type.lower():
            text = body.decode("utf-8", "surrogateescape")
            return self.redact_query(text) == text
        return True

    def _check_keys(self, pairs: list[tuple[str, Any]]) -> None:
        keys = self.json_keys
        for key, _ in pairs:
            if key in keys:
                raise _KeyMatch

    def _json_unchanged(self, text: str) -> bool:
        """No member key matches and the nesting is within MAX_JSON_DEPTH (else: maybe)."""
        if "\\" not in text:
            needles = self.json_keys.needles
            # ASCII without escapes: every key stands in the text as written, so a matching
            # key puts one of the needles into the lower-cased text: none there, no match.
            if (needles is not None and text.isascii() and _shallow(text)
                    and needles.search(text.lower()) is None):
                return True
            # Without escapes every '"' opens or closes a string, so the odd pieces of a split
            # on '"' are the strings as written, and a string followed by ':' is a member name
            # (RFC 8259 §4): checking those few names is exact, and cheaper than parsing. (Not
            # JSON after all? Then the rewriter keeps the text: "maybe" was safe.)
            pieces = text.split('"')
            keys = self.json_keys
            known = keys._memo.get  # verdicts already reached, without a method call
            for name, after in zip(pieces[1:-1:2], pieces[2::2]):
                c = after[:1]
                if c == ":" or (c in _JSON_SPACE and after.lstrip(" \t\r\n")[:1] == ":"):
                    hit = known(name)
                    if hit or (hit is None and name in keys):
                        return False
            return _shallow(text) or _max_depth(text) <= MAX_JSON_DEPTH
        try:
            # Where this parser and the rewriter disagree (NaN, invalid text) the rewriter
            # returns the text unchanged, or this call fails: either way the answer holds.
            self._scan_keys(text)
        except (ValueError, RecursionError, _KeyMatch):
            return False
        return _shallow(text) or _max_depth(text) <= MAX_JSON_DEPTH

    # -- JSON rewriting (recursive descent over RFC 8259) ---------------------------------------
    def _value(self, s: str, i: int, out: list[str], depth: int) -> int:
        c = s[i : i + 1]
        if c == "{":
            return self._object(s, i, out, depth + 1)
        if c == "[":
            return self._array(s, i, out, depth + 1)
        if not c:
            raise _NotJson
        m = (_STRING if c == '"' else _NUMBER if c in "-0123456789" else _LITERAL).match(s, i)
        if m is None:
            raise _NotJson
        out.append(m.group())
        return m.end()

    def _object(self, s: str, i: int, out: list[str], depth: int) -> int:
        if depth > MAX_JSON_DEPTH:
            raise _TooDeep
        out.append("{")
        j = _ws(s, i + 1, out)
        if s[j : j + 1] == "}":
            out.append("}")
            return j + 1
        while True:
            m = _STRING.match(s, j)
            if m is None:
                raise _NotJson
            key_tok = m.group()
            out.append(key_tok)
            k = _ws(s, m.end(), out)
            if s[k : k + 1] != ":":
                raise _NotJson
            out.append(":")
            v = _ws(s, k + 1, out)
            key = json.loads(key_tok) if "\\" in key_tok else key_tok[1:-1]
            if key in self.json_keys:
                end = self._value(s, v, [], depth)
                out.append(self._mask_json)
            else:
                end = self._value(s, v, out, depth)
            e = _ws(s, end, out)
            c = s[e : e + 1]
            if c == "}":
                out.append("}")
                return e + 1
            if c != ",":
                raise _NotJson
            out.append(",")
            j = _ws(s, e + 1, out)

    def _array(self, s: str, i: int, out: list[str], depth: int) -> int:
        if depth > MAX_JSON_DEPTH:
            raise _TooDeep
        out.append("[")
        j = _ws(s, i + 1, out)
        if s[j : j + 1] == "]":
            out.append("]")
            return j + 1
        while True:
            end = self._value(s, j, out, depth)
            e = _ws(s, end, out)
            c = s[e : e + 1]
            if c == "]":
                out.append("]")
                return e + 1
            if c != ",":
                raise _NotJson
            out.append(",")
            j = _ws(s, e + 1, out)


def _shallow(text: str) -> bool:
    """Too few brackets to nest deeper than MAX_JSON_DEPTH (a cheap upper bound)."""
    return text.count("{") + text.count("[") <= MAX_JSON_DEPTH


def _max_depth(text: str) -> int:
    """Deepest nesting of objects and arrays in valid JSON ``text`` (brackets in strings skipped)."""
    depth = deepest = 0
    for c in _BRACKETS.findall(_STRING.sub("", text)):
        if c in "{[":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _ws(s: str, i: int, out: list[str]) -> int:
    """Skip JSON whitespace at ``i``, copying it to ``out``; return the next position."""
    m = _WS.match(s, i)
    assert m is not None  # the pattern matches the empty string
    if m.end() > i:
        out.append(m.group())
    return m.end()
