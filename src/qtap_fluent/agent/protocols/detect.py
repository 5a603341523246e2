"""Which protocol a connection speaks, from its first bytes (table-driven).

Returns ``None`` while more bytes are needed; never more than ``NEED`` bytes are looked at.
"""

from __future__ import annotations

import re

from qtap_fluent.agent.protocols.http2 import PREFACE

HTTP1_REQUEST = "http1"  #: a request line: these bytes come from the client
HTTP1_RESPONSE = "http1-response"  #: a status line: the request was missed
HTTP2 = "http2"  #: the client connection preface (RFC 9113 §3.4)
HTTP2_FRAMES = "http2-frames"  #: HTTP/2 frames without the preface: capture began mid-stream
OTHER = "other"

#: Bytes needed to decide in the worst case (the HTTP/2 preface is 24).
NEED = len(PREFACE)

# RFC 9112 §3: method SP request-target. Methods are tokens; we accept upper-case ones, which
# covers every registered method, followed by a target in origin, absolute, authority or '*' form.
_REQUEST_LINE = re.compile(rb"[A-Z][A-Z_-]{1,19} [/*a-zA-Z0-9\[]")
_STATUS_LINE = b"HTTP/1."


def detect(first: bytes) -> str | None:
    """Classify the first bytes one side sent; ``None`` means "send more"."""
    if first[:3] == b"PRI":
        if len(first) < NEED:
            return None if PREFACE.startswith(first) else OTHER
        return HTTP2 if first.startswith(PREFACE) else OTHER
    if first[:5] == _STATUS_LINE[:len(first[:5])] and len(first) < len(_STATUS_LINE):
        return None
    if first.startswith(_STATUS_LINE):
        return HTTP1_RESPONSE
    m = _REQUEST_LINE.match(first)
    if m:
        return HTTP1_REQUEST
    if _looks_like_h2_frame(first):
        return HTTP2_FRAMES
    if len(first) < 9 and _h2_frame_prefix(first):
        return None
    # Still a prefix of a possible request line: an upper-case token with no space yet.
    head = first[:21]
    if len(first) < 22 and head.isupper() and head.isalpha() or (
            len(first) < 22 and first.rstrip(b" ").isupper() and first.count(b" ") == 1
            and first.endswith(b" ")):
        return None
    return OTHER


def _looks_like_h2_frame(first: bytes) -> bool:
    """A plausible HTTP/2 frame header (RFC 9113 §4.1): length within the default
    SETTINGS_MAX_FRAME_SIZE, a known type, flags valid for it, the reserved bit clear, and a
    stream id that fits the type (SETTINGS/PING/GOAWAY on 0, HEADERS/DATA on an odd/any id)."""
    if len(first) < 9:
        return False
    length = int.from_bytes(first[:3], "big")
    ftype, flags, sid = first[3], first[4], int.from_bytes(first[5:9], "big")
    if length > 16384 or ftype > 9 or sid & 0x80000000:
        return False
    if ftype in (4, 6, 7):  # SETTINGS, PING, GOAWAY: connection-level
        return sid == 0 and flags & ~0x01 == 0
    return sid != 0 and flags & ~0x2D == 0


def _h2_frame_prefix(first: bytes) -> bool:
    """Could these few bytes still become a plausible frame header?"""
    return (first[:1] == b"\0" and (len(first) < 2 or first[1] <= 0x40)
            and (len(first) < 4 or first[3] <= 9))
