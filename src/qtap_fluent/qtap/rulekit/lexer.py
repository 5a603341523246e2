"""Tokens of the rulekit expression language (qtap.md §2.1).

Upstream lexes with a Ragel longest-match scanner (``lexer.rl``): at each position the longest
token wins, and on a tie the pattern listed first wins. We keep that rule, so the quirks carry
over: ``android`` is a field (longer than ``and``), ``true`` is a bool (bool before function),
``ab`` or ``a1`` alone is a *hex string* (hex before function), ``a--b`` is one field.

``tokenize`` is pure: text in, a list of ``Token`` out, ``RuleSyntaxError`` with a 0-based
character offset on anything it cannot read.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass

from qtap_fluent.qtap.rulekit.errors import RuleSyntaxError


class Kind(enum.Enum):
    """Token kinds; the operator kinds double as AST operator names."""

    LPAREN = "("
    RPAREN = ")"
    LBRACKET = "["
    RBRACKET = "]"
    COMMA = ","
    NOT = "not"
    AND = "and"
    OR = "or"
    EQ = "=="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    CONTAINS = "contains"
    MATCHES = "matches"
    IN = "in"
    INT = "integer"
    FLOAT = "float"
    BOOL = "boolean"
    STRING = "string"
    IP = "IP"
    CIDR = "CIDR"
    HEX = "hex string"
    REGEX = "regex"
    FUNCTION = "name"
    FIELD = "field"
    END = "end of rule"


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    text: str
    offset: int


# Word operators, matched case-insensitively (``AND``, ``Or``, ``EQ`` all work).
_WORDS: dict[str, Kind] = {
    "not": Kind.NOT, "and": Kind.AND, "or": Kind.OR,
    "eq": Kind.EQ, "ne": Kind.NE, "lt": Kind.LT, "le": Kind.LE, "gt": Kind.GT, "ge": Kind.GE,
    "contains": Kind.CONTAINS, "matches": Kind.MATCHES, "in": Kind.IN,
    "true": Kind.BOOL, "false": Kind.BOOL,
}
_SYMBOLS: tuple[tuple[str, Kind], ...] = (  # longest first
    ("==", Kind.EQ), ("!=", Kind.NE), ("<=", Kind.LE), (">=", Kind.GE), ("=~", Kind.MATCHES),
    ("&&", Kind.AND), ("||", Kind.OR),
    ("(", Kind.LPAREN), (")", Kind.RPAREN), ("[", Kind.LBRACKET), ("]", Kind.RBRACKET),
    (",", Kind.COMMA), ("!", Kind.NOT), ("<", Kind.LT), (">", Kind.GT),
)

# ASCII only, like Ragel's ``alpha``/``digit``.
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_FUNCTION = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?[0-9]*\.[0-9]+")
_HEX = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})*")
_IP_RUN = re.compile(r"[0-9A-Fa-f:.]+")
_PREFIX = re.compile(r"/[0-9]{1,2}")
_WS = " \t\n\r"


def _ip_length(text: str, pos: int) -> int:
    """Length of the longest IPv4/IPv6 address starting at ``pos`` (0 if none)."""
    m = _IP_RUN.match(text, pos)
    if m is None:
        return 0
    run = m.group()[:45]  # no address is longer than 45 characters (IPv6 with IPv4 tail)
    # IPv4 octets without leading zeros and IPv6 per RFC 4291 §2.2, as upstream's Ragel machine;
    # Python's ipaddress agrees on both (it refuses zone ids and leading zeros too).
    for end in range(len(run), 1, -1):
        candidate = run[:end]
        if candidate[-1] == "." or (":" not in candidate and candidate.count(".") != 3):
            continue
        try:
            ipaddress.ip_address(candidate)
        except ValueError:
            continue
        return end
    return 0


def _quoted_length(text: str, pos: int) -> int:
    """Length of the quoted string at ``pos``; a backslash escapes the next character."""
    quote = text[pos]
    i = pos + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == quote:
            return i + 1 - pos
        i += 1
    raise RuleSyntaxError(f"unterminated {quote}-quoted string", pos)


def _regex_length(text: str, pos: int) -> int:
    """Length of a ``/…/`` or ``|…|`` regex literal at ``pos``, or 0 if it never closes."""
    delim = text[pos]
    i = pos + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == delim:
            return i + 1 - pos
        i += 1
    return 0


def _skip(text: str, pos: int) -> int:
    """Skip whitespace, ``-- line`` and ``/* block */`` comments; return the next position."""
    n = len(text)
    while pos < n:
        ch = text[pos]
        if ch in _WS:
            pos += 1
        elif text.startswith("--", pos):
            end = text.find("\n", pos)
            pos = n if end < 0 else end + 1
        elif text.startswith("/*", pos):
            end = text.find("*/", pos + 2)
            if end < 0:
                raise RuleSyntaxError("unterminated /* comment", pos)
            pos = end + 2
        else:
            break
    return pos


def _candidates(text: str, pos: int) -> list[tuple[int, Kind]]:
    """Every token that can start at ``pos`` as (length, kind), in upstream priority order."""
    out: list[tuple[int, Kind]] = []
    ch = text[pos]
    for sym, kind in _SYMBOLS:
        if text.startswith(sym, pos):
            out.append((len(sym), kind))
            break
    word = _FUNCTION.match(text, pos)
    if word is not None and word.group().lower() in _WORDS:
        kind = _WORDS[word.group().lower()]
        if kind is not Kind.BOOL:
            out.append((len(word.group()), kind))
    for rx, kind in ((_INT, Kind.INT), (_FLOAT, Kind.FLOAT)):
        m = rx.match(text, pos)
        if m is not None:
            out.append((m.end() - pos, kind))
    if word is not None and word.group().lower() in ("true", "false"):
        out.append((len(word.group()), Kind.BOOL))
    if ch in "\"'":
        out.append((_quoted_length(text, pos), Kind.STRING))
    ip_len = _ip_length(text, pos)
    if ip_len:
        out.append((ip_len, Kind.IP))
        prefix = _PREFIX.match(text, pos + ip_len)
        if prefix is not None:
            out.append((ip_len + len(prefix.group()), Kind.CIDR))
    hexm = _HEX.match(text, pos)
    if hexm is not None:
        out.append((hexm.end() - pos, Kind.HEX))
    if ch == "/" or (ch == "|" and not text.startswith("||", pos)):
        length = _regex_length(text, pos)
        if length:
            out.append((length, Kind.REGEX))
    if word is not None:
        out.append((len(word.group()), Kind.FUNCTION))
        field = _FIELD.match(text, pos)
        if field is not None:
            out.append((field.end() - pos, Kind.FIELD))
    return out


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with one ``END`` token."""
    tokens: list[Token] = []
    pos = _skip(text, 0)
    n = len(text)
    while pos < n:
        best_len, best_kind = 0, Kind.END
        for length, kind in _candidates(text, pos):
            if length > best_len:  # strictly longer: on a tie the earlier pattern wins
                best_len, best_kind = length, kind
        if best_len == 0:
            raise RuleSyntaxError(f"unexpected character {text[pos]!r}", pos)
        tokens.append(Token(best_kind, text[pos:pos + best_len], pos))
        pos = _skip(text, pos + best_len)
    tokens.append(Token(Kind.END, "", n))
    return tokens
