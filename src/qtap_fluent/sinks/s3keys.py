"""Expand Fluent Bit's ``s3_key_format`` (FB ``src/aws/flb_aws_util.c`` ``flb_get_s3_key``).

Tokens: ``$TAG`` (whole tag), ``$TAG[n]`` (n-th part, 0-based, after splitting the tag on any
character of ``s3_key_format_tag_delimiters``; only ``$TAG[0]``..``$TAG[9]``, out of range stays
literal as in Fluent Bit), ``$INDEX`` (a persisted sequence number), ``$UUID`` (8 random
alphanumerics) and strftime ``%`` conversions in UTC with the time of the first record.

One deliberate difference: we apply strftime to the *format* before substituting tokens, so a
``%`` inside a tag stays a ``%`` in the key (Fluent Bit would feed it to strftime).
"""

from __future__ import annotations

import re
import secrets
import string
import time

from qtap_fluent.sinks.limits import S3_MAX_KEY_BYTES

DEFAULT_KEY_FORMAT = "/fluent-bit-logs/$TAG/%Y/%m/%d/%H/%M/%S"

#: Fluent Bit splits the tag into at most 10 parts.
MAX_TAG_PARTS = 10

#: One pass over all tokens, so a literal left by an out-of-range $TAG[n] is not re-expanded.
_TOKEN = re.compile(r"\$TAG\[(\d+)\]|\$TAG|\$INDEX|\$UUID")
_ALNUM = string.ascii_letters + string.digits


def random_suffix(n: int = 8) -> str:
    """``n`` random alphanumerics (what ``$UUID`` expands to)."""
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def has_unique_token(fmt: str) -> bool:
    """Whether keys made from ``fmt`` differ between objects without a random suffix."""
    return "$UUID" in fmt or "$INDEX" in fmt


def split_tag(tag: str, delimiters: str = ".") -> list[str]:
    """Split ``tag`` on any character of ``delimiters``, keeping at most 10 parts."""
    if not delimiters:
        return [tag]
    parts = re.split("[" + re.escape(delimiters) + "]", tag)
    return parts[:MAX_TAG_PARTS]


def format_key(fmt: str, *, tag: str, time_s: float, index: int, uuid: str,
               delimiters: str = ".") -> str:
    """The object key for ``fmt`` (leading ``/`` removed: S3 keys have none)."""
    stamped = time.strftime(fmt, time.gmtime(time_s)) if "%" in fmt else fmt
    parts = split_tag(tag, delimiters)

    def expand(m: re.Match[str]) -> str:
        token = m.group(0)
        if m.group(1) is not None:
            n = int(m.group(1))
            return parts[n] if n < len(parts) else token
        return {"$TAG": tag, "$INDEX": str(index), "$UUID": uuid}[token]

    key = _TOKEN.sub(expand, stamped).lstrip("/")
    encoded = key.encode("utf-8")
    if len(encoded) > S3_MAX_KEY_BYTES:
        # S3 refuses longer keys; Fluent Bit truncates with a warning, and so do we.
        key = encoded[:S3_MAX_KEY_BYTES].decode("utf-8", "ignore")
    return key
