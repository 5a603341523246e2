"""Build HTTP/2 wire bytes for tests with hyperframe + hpack (one encoder per direction)."""

from __future__ import annotations

import hpack
import hyperframe.frame as hf

from qtap_fluent.agent.protocols.http2 import PREFACE


class Side:
    """Frames one endpoint sends; ``headers`` can split a block across CONTINUATION frames."""

    def __init__(self) -> None:
        self.encoder = hpack.Encoder()

    def settings(self, **values: int) -> bytes:
        f = hf.SettingsFrame(0)
        for name, value in values.items():
            f.settings[getattr(hf.SettingsFrame, name)] = value
        return f.serialize()

    def headers(self, sid: int, headers: list[tuple[str, str]], end_stream: bool = False,
                split: int = 0, pad: int = 0) -> bytes:
        block = self.encoder.encode(headers)
        first, rest = (block[:split], block[split:]) if split else (block, b"")
        f = hf.HeadersFrame(sid, first)
        if end_stream:
            f.flags.add("END_STREAM")
        if pad:
            f.flags.add("PADDED")
            f.pad_length = pad
        if not rest:
            f.flags.add("END_HEADERS")
            return f.serialize()
        c = hf.ContinuationFrame(sid, rest)
        c.flags.add("END_HEADERS")
        return f.serialize() + c.serialize()

    def data(self, sid: int, data: bytes, end_stream: bool = False, pad: int = 0) -> bytes:
        f = hf.DataFrame(sid, data)
        if end_stream:
            f.flags.add("END_STREAM")
        if pad:
            f.flags.add("PADDED")
            f.pad_length = pad
        return f.serialize()

    def rst(self, sid: int, code: int = 8) -> bytes:
        return hf.RstStreamFrame(sid, code).serialize()


def request(sid: int, path: str, method: str = "GET", authority: str = "example.com",
            extra: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    return [(":method", method), (":scheme", "http"), (":authority", authority),
            (":path", path), *(extra or [])]


__all__ = ["PREFACE", "Side", "request"]
