"""Rulekit values: literal decoding, truthiness and the type-aware comparison table (qtap.md §2.2).

Python stand-ins for upstream's Go types: ``int``/``float`` for int64/uint64/float64, ``str``,
``bool``, ``ipaddress`` addresses and networks for ``net.IP``/``*net.IPNet``, ``HexString``,
``MacAddr`` for ``net.HardwareAddr``, compiled ``re.Pattern`` for RE2 regexps, ``list``/``tuple``
for slices. The left operand's type picks the comparison, as upstream's ``compare`` does.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from math import isnan
from typing import Any, Final

IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network

# Operator codes: the comparison table is indexed by these strings.
EQ: Final = "=="
NE: Final = "!="
GT: Final = ">"
GE: Final = ">="
LT: Final = "<"
LE: Final = "<="
CONTAINS: Final = "contains"


@dataclass(frozen=True, slots=True)
class HexString:
    """``12:34:ab`` — raw bytes written as hex pairs (upstream ``HexString``)."""

    raw: str
    data: bytes

    def __str__(self) -> str:
        return self.raw


@dataclass(frozen=True, slots=True)
class MacAddr:
    """A MAC-like address (a quoted string with 5 or 7 colons that parses as one)."""

    data: bytes

    def __str__(self) -> str:
        return ":".join(f"{b:02x}" for b in self.data)


def parse_hex(raw: str) -> HexString:
    return HexString(raw, bytes.fromhex(raw.replace(":", "")))


def _parse_mac(text: str) -> MacAddr | None:
    parts = text.split(":")
    if len(parts) not in (6, 8) or any(len(p) != 2 for p in parts):
        return None
    try:
        return MacAddr(bytes.fromhex("".join(parts)))
    except ValueError:
        return None


def normalize_ip(ip: IPAddr) -> IPAddr:
    """Go's ``net.IP.Equal`` treats ``::ffff:1.2.3.4`` and ``1.2.3.4`` as one address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def parse_ip(text: str) -> IPAddr:
    return normalize_ip(ipaddress.ip_address(text))


def parse_cidr(text: str) -> IPNet:
    """Like Go's ``net.ParseCIDR``: host bits are masked off; a bad prefix is an error."""
    return ipaddress.ip_network(text, strict=False)


_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t",
                   "v": "\v", "\\": "\\", '"': '"'}


def go_unquote(body: str) -> str:
    """Decode the inside of a Go double-quoted literal (``strconv.Unquote``); ValueError if bad."""
    if "\\" not in body:
        if "\n" in body:
            raise ValueError("newline in string")
        return body
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        ch = body[i]
        if ch == "\n":
            raise ValueError("newline in string")
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        if i + 1 >= n:
            raise ValueError("string ends in a backslash")
        esc = body[i + 1]
        if esc in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[esc])
            i += 2
        elif esc in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[esc]
            digits = body[i + 2:i + 2 + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise ValueError(f"bad \\{esc} escape")
            code = int(digits, 16)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise ValueError(f"bad \\{esc} escape")
            out.append(chr(code))
            i += 2 + width
        elif esc in "01234567":
            digits = body[i + 1:i + 4]
            if len(digits) != 3 or not all(c in "01234567" for c in digits) or int(digits, 8) > 255:
                raise ValueError("bad octal escape")
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            raise ValueError(f"unknown escape \\{esc}")
    return "".join(out)


def parse_string(token: str) -> Any:
    """A quoted literal: its text, or an IP / CIDR / MAC when the text parses as one."""
    body = token[1:-1]
    if token[0] == "'":
        # Upstream rewrites a single-quoted literal into a double-quoted one and unquotes that.
        body = body.replace('"', '\\"').replace("\\'", "'")
    text = go_unquote(body)
    if "%" in text:  # Go's net.ParseIP refuses IPv6 zones ("fe80::1%eth0"); Python accepts them
        return text
    try:
        return parse_ip(text)
    except ValueError:
        pass
    if "/" in text:
        try:
            return parse_cidr(text)
        except ValueError:
            pass
    if text.count(":") in (5, 7):
        mac = _parse_mac(text)
        if mac is not None:
            return mac
    return text


_INT64_MIN, _UINT64_MAX = -(1 << 63), (1 << 64) - 1


def parse_int(token: str) -> int:
    """Go ``strconv.ParseInt(s, 0, 64)``, then ParseUint: a leading 0 means octal (``010`` is 8)."""
    sign = -1 if token[0] == "-" else 1
    digits = token.lstrip("+-")
    value = int(digits, 8) if len(digits) > 1 and digits[0] == "0" else int(digits, 10)
    value *= sign
    if not _INT64_MIN <= value <= _UINT64_MAX:
        raise ValueError("value out of range")
    return value


def is_zero(value: Any) -> bool:
    """Upstream ``isZero``: nil, false, 0, "", empty bytes/lists/maps are zero."""
    if value is None or value is False:
        return True
    cls = value.__class__
    if cls is bool:
        return not value
    if cls is int or cls is float or cls is str or cls is list or cls is tuple or cls is bytes:
        return not value
    if isinstance(value, (Mapping, list, tuple, bytes)):
        return len(value) == 0
    if isinstance(value, MacAddr):
        return not value.data
    return False


def _is_number(value: Any) -> bool:
    cls = value.__class__
    return (cls is int or cls is float) or (
        isinstance(value, (int, float)) and not isinstance(value, bool))


def _cmp_op(c: int, op: str) -> bool:
    if op == EQ:
        return c == 0
    if op == NE:
        return c != 0
    if op == GT:
        return c > 0
    if op == GE:
        return c >= 0
    if op == LT:
        return c < 0
    if op == LE:
        return c <= 0
    return False


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and isnan(value)


def compare_number(left: float, op: str, right: Any) -> bool:
    # Python compares int with float exactly; upstream turns the int into a float64 first, so
    # the two differ only for integers beyond 2**53 compared with floats.
    if not _is_number(right):
        return False  # not comparable: false for every operator, even !=
    l_nan, r_nan = _is_nan(left), _is_nan(right)
    if l_nan or r_nan:  # Go's cmp.Compare orders NaN below every number, equal to NaN
        c = r_nan - l_nan
    else:
        c = (left > right) - (left < right)
    return _cmp_op(c, op)


def _string_as_ip(text: str) -> IPAddr | None:
    # qtap hands rulekit net.IP values for src.ip/dst.ip; a capture source may hand us text, so a
    # string that is an address compares as one against IP/CIDR literals (upstream would compare
    # the text with the literal's text, which gives the same answer for == and != of addresses).
    try:
        return parse_ip(text)
    except ValueError:
        return None


def compare_string(left: str, op: str, right: Any) -> bool:
    if isinstance(right, str):
        if op == EQ:
            return left == right
        if op == NE:
            return left != right
        if op == CONTAINS:
            return right in left
        return False  # > < between strings are false
    if isinstance(right, re.Pattern):
        # Go's MatchString finds a match anywhere: re.search, not re.match.
        if op == EQ or op == CONTAINS:
            return right.search(left) is not None
        if op == NE:
            return right.search(left) is None
        return False
    if isinstance(right, (ipaddress.IPv4Address, ipaddress.IPv6Address,
                          ipaddress.IPv4Network, ipaddress.IPv6Network)):
        ip = _string_as_ip(left)
        if ip is not None:
            return compare_ip(ip, op, right)
        return compare_string(left, op, str(right))
    if isinstance(right, HexString):
        return _compare_bytes(_utf8(left), op, right.data)
    return False


def _utf8(text: str) -> bytes:
    """The bytes of ``text``; a capture source may carry undecodable bytes as surrogates."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _compare_bytes(left: bytes, op: str, right: bytes) -> bool:
    if op == EQ:
        return left == right
    if op == NE:
        return left != right
    if op == CONTAINS:
        return right in left
    return False


def compare_ip(left: IPAddr, op: str, right: Any) -> bool:
    left = normalize_ip(left)
    if isinstance(right, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        if op == EQ:
            return left == normalize_ip(right)
        if op == NE:
            return left != normalize_ip(right)
        return False
    if isinstance(right, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        inside = left.version == right.version and left in right
        if op == EQ or op == CONTAINS:
            return inside
        if op == NE:
            return not inside
    return False


def compare_network(left: IPNet, op: str, right: Any) -> bool:
    if isinstance(right, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        right = normalize_ip(right)
        inside = right.version == left.version and right in left
        if op == EQ or op == CONTAINS:
            return inside
        if op == NE:
            return not inside
    return False


def compare_mac(left: MacAddr, op: str, right: Any) -> bool:
    if isinstance(right, MacAddr):
        return _compare_bytes(left.data, op, right.data)
    if isinstance(right, (HexString, str)):
        return compare_string(str(left).lower(), op, str(right).lower())
    return False


def compare_each(items: Any, op: str, test: Callable[[Any, str], bool]) -> bool:
    """A list side passes when ANY element passes; ``!=`` means none equal; ``contains`` means
    one element is equal (never a substring test)."""
    if op == NE:
        return not compare_each(items, EQ, test)
    if op == CONTAINS:
        op = EQ
    return any(test(item, op) for item in items)


def compare(left: Any, op: str, right: Any) -> bool:
    """Upstream ``compare``: a list on the right fans out; then the LEFT type decides."""
    if isinstance(right, (list, tuple)):
        if op == CONTAINS:
            return False  # contains does not take a list on the right
        return compare_each(right, op, lambda rv, o: compare(left, o, rv))
    cls = left.__class__
    if cls is str:
        return compare_string(left, op, right)
    if cls is int or cls is float:
        return compare_number(left, op, right)
    if cls is bool:
        if right.__class__ is not bool:
            return False
        return (left == right) if op == EQ else (left != right) if op == NE else False
    if isinstance(left, (list, tuple)):
        return compare_each(left, op, lambda lv, o: compare(lv, o, right))
    if isinstance(left, str):
        return compare_string(str(left), op, right)
    if _is_number(left):
        return compare_number(left, op, right)
    if isinstance(left, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return compare_ip(left, op, right)
    if isinstance(left, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return compare_network(left, op, right)
    if isinstance(left, MacAddr):
        return compare_mac(left, op, right)
    return False


def go_sprint(value: Any) -> str:
    """Roughly Go's ``fmt.Sprint``, which ``starts_with`` applies to its arguments."""
    if value is None:
        return "<nil>"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_sprint(v) for v in value) + "]"
    if isinstance(value, re.Pattern):
        return str(value.pattern)
    return str(value)
