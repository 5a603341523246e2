"""On-disk spool of ready-to-send forward frames, so records survive a receiver outage and a
restart of the sending process.

Each file is one complete PackedForward frame (options include its ``chunk`` id), named
``<seq>-<count>-<chunk id hex>.fwd`` so the spool can be listed without reading the frames.
Files are written to ``*.tmp`` and renamed, so a crash never leaves a half frame under a
``.fwd`` name; leftover ``*.tmp`` files are removed when the spool is opened. The spool is
bounded by ``max_bytes``; the client decides what happens when it is full (block or drop the
oldest file).
"""

from __future__ import annotations

import base64
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("qtap_fluent.forward.spool")

_NAME = re.compile(r"^(\d{20})-(\d+)-([0-9a-f]{32})\.fwd$")


@dataclass(frozen=True, slots=True, kw_only=True)
class SpoolEntry:
    """One spooled frame: where it is, its chunk id (as sent in the options) and record count."""

    path: Path
    chunk_id: str
    count: int
    size: int


def chunk_id_of(raw: bytes) -> str:
    """The wire chunk id for 16 random bytes: Base64, 24 characters (spec v1, Fluent Bit ≥5.0.9)."""
    return base64.b64encode(raw).decode("ascii")


class Spool:
    """A directory of frames, oldest first."""

    def __init__(self, directory: str | os.PathLike[str], *, max_bytes: int = 1 << 30,
                 fsync: bool = False) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.fsync = fsync
        self._entries: list[SpoolEntry] = []
        self.used_bytes = 0
        self._seq = 0
        self._scan()

    def _scan(self) -> None:
        for path in sorted(self.directory.iterdir()):
            if path.suffix == ".tmp":
                path.unlink(missing_ok=True)
                continue
            m = _NAME.match(path.name)
            if m is None:
                log.warning("forward spool: ignoring unknown file %s", path)
                continue
            size = path.stat().st_size
            self._entries.append(SpoolEntry(
                path=path, chunk_id=chunk_id_of(bytes.fromhex(m[3])), count=int(m[2]), size=size,
            ))
            self.used_bytes += size
            self._seq = max(self._seq, int(m[1]) + 1)

    def entries(self) -> list[SpoolEntry]:
        """Spooled frames, oldest first."""
        return list(self._entries)

    def has_room(self, size: int) -> bool:
        """Whether ``size`` more bytes fit under ``max_bytes``."""
        return self.used_bytes + size <= self.max_bytes

    def put(self, raw_id: bytes, count: int, frame: bytes) -> SpoolEntry:
        """Write one frame whose chunk id is ``chunk_id_of(raw_id)``."""
        name = f"{self._seq:020d}-{count}-{raw_id.hex()}.fwd"
        self._seq += 1
        path = self.directory / name
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(frame)
            if self.fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        entry = SpoolEntry(path=path, chunk_id=chunk_id_of(raw_id), count=count, size=len(frame))
        self._entries.append(entry)
        self.used_bytes += len(frame)
        return entry

    def take(self, entry: SpoolEntry) -> None:
        """Forget ``entry`` from the listing (the caller is sending it); the file stays."""
        if entry in self._entries:
            self._entries.remove(entry)

    @staticmethod
    def read(entry: SpoolEntry) -> bytes:
        """The frame bytes of ``entry``."""
        return entry.path.read_bytes()

    def remove(self, entry: SpoolEntry) -> None:
        """Delete a delivered (or dropped) frame."""
        self.take(entry)
        entry.path.unlink(missing_ok=True)
        self.used_bytes -= entry.size

    def pop_oldest(self) -> SpoolEntry | None:
        """Delete the oldest frame and return it (drop-oldest overflow), if any."""
        if not self._entries:
            return None
        entry = self._entries[0]
        self.remove(entry)
        return entry
