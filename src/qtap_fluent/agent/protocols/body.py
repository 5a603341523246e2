"""Body collection shared by HTTP/1 and HTTP/2: bounded, with content decoding at the end.

Bodies are kept up to ``limit`` bytes (the head of the body; Qtap keeps the tail, we keep the
head and say so with ``Body.truncated``). Content-Encoding gzip, deflate and br are decoded
(RFC 9110 §8.4.1) into at most ``limit`` bytes, so a decompression bomb costs no more memory
than the limit. Unknown or stacked codings are left as they are, with ``decode_error`` set.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import brotli

from qtap_fluent.agent.protocols.events import EMPTY_BODY, Body, new_body

#: Default cap on one body, decoded. Qtap's --http-buffer-size default is 2 MB (qtap.md §5).
DEFAULT_BODY_LIMIT = 2 * 1024 * 1024


def _zlib(wbits: int) -> Callable[[bytes, int], tuple[bytes, bool]]:
    def decode(data: bytes, limit: int) -> tuple[bytes, bool]:
        d = zlib.decompressobj(wbits)
        out = d.decompress(data, limit + 1)
        return out[:limit], len(out) > limit or bool(d.unconsumed_tail)

    return decode


def _deflate(data: bytes, limit: int) -> tuple[bytes, bool]:
    # "deflate" is meant to be zlib-wrapped (RFC 9110 §8.4.1.2) but servers send raw deflate too.
    try:
        return _zlib(zlib.MAX_WBITS)(data, limit)
    except zlib.error:
        return _zlib(-zlib.MAX_WBITS)(data, limit)


def _brotli(data: bytes, limit: int) -> tuple[bytes, bool]:
    d = brotli.Decompressor()
    out = d.process(data, output_buffer_limit=limit + 1)
    while len(out) <= limit and not d.is_finished() and not d.can_accept_more_data():
        out += d.process(b"", output_buffer_limit=limit + 1 - len(out))
    return out[:limit], len(out) > limit


#: Content codings we decode, by token (RFC 9110 §8.4.1). ``x-gzip`` is gzip's alias.
DECODERS: dict[str, Callable[[bytes, int], tuple[bytes, bool]]] = {
    "gzip": _zlib(16 + zlib.MAX_WBITS),
    "x-gzip": _zlib(16 + zlib.MAX_WBITS),
    "deflate": _deflate,
    "br": _brotli,
}


class Budget:
    """Body bytes held at once by every open body of a tracker (the global memory bound).

    Collectors take bytes while they collect and give them back when the body is finished.
    Bytes refused because the budget is spent are counted in ``dropped`` (the body is then
    marked truncated, like one over its own limit).
    """

    __slots__ = ("dropped", "limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.dropped = 0


UNLIMITED = Budget(1 << 62)


class BodyCollector:
    """Collects one message body; ``finish`` decodes it and returns the frozen ``Body``."""

    __slots__ = ("_kept", "_parts", "budget", "encoding", "limit", "lost", "wire_len")

    def __init__(self, limit: int, encoding: str = "", budget: Budget = UNLIMITED) -> None:
        self.limit = limit
        self.budget = budget
        self.encoding = encoding.strip().lower() if encoding else ""
        self._parts: list[bytes] = []
        self._kept = 0
        self.wire_len = 0
        self.lost = False

    def add(self, data: bytes) -> None:
        """Append payload bytes (already de-chunked); bytes past the limit are counted only."""
        n = len(data)
        self.wire_len += n
        budget = self.budget
        own = self.limit - self._kept
        shared = budget.limit - budget.used
        room = min(own, shared)
        if n > room:
            if shared < own:  # cut by the shared bound, not the body's own limit
                budget.dropped += n - max(room, 0)
            self.lost = True
            if room <= 0:
                return
            data = data[:room]
            n = room
        self._parts.append(data)
        self._kept += n
        budget.used += n

    def gap(self, n: int) -> None:
        """``n`` payload bytes were not captured (DataEvent.truncated)."""
        self.wire_len += n
        self.lost = True

    def release(self) -> None:
        """The body is abandoned (reset, desync, eviction): give its bytes back to the budget."""
        self.budget.used -= self._kept
        self._kept = 0
        self._parts = []

    def finish(self, complete: bool = True) -> Body:
        """The body as it stands; ``complete=False`` when the message ended before its end."""
        if not self._parts and not self.lost and complete:
            return EMPTY_BODY
        parts = self._parts
        raw = parts[0] if len(parts) == 1 else b"".join(parts)
        self.budget.used -= self._kept  # the finished body leaves the parser's hands
        self._kept = 0
        self._parts = []
        truncated = self.lost or not complete
        if not self.encoding or self.encoding == "identity" or not raw:
            return new_body(raw, truncated, self.wire_len)  # data, truncated, wire_len
        decoder = DECODERS.get(self.encoding)
        if decoder is None:
            return Body(data=raw, truncated=truncated, wire_len=self.wire_len,
                        decode_error=f"content-encoding {self.encoding!r} not decoded")
        try:
            data, over = decoder(raw, self.limit)
        except (zlib.error, brotli.error) as exc:
            return Body(data=raw, truncated=truncated, wire_len=self.wire_len,
                        decode_error=f"{self.encoding}: {exc}")
        return Body(data=data, truncated=truncated or over, wire_len=self.wire_len)
