"""``file`` sink: JSON lines appended to one file, rotated by size.

Rotation works like logrotate's ``rotate N``: ``out.jsonl`` becomes ``out.jsonl.1``, ``.1``
becomes ``.2`` and so on; the oldest beyond ``keep`` is deleted. A batch is never split across
two files, so a file is only over ``max_bytes`` when a single batch is. With ``fsync`` (default)
``write`` returns OK only after the bytes reached the disk: that is what lets ``serve`` ack.
"""

from __future__ import annotations

import os
from pathlib import Path

from qtap_fluent.sinks.base import Batch, Result, SinkError, json_lines


class FileSink:
    """Append JSON lines to ``path``; rotate when it would grow past ``max_bytes``."""

    name = "file"

    def __init__(self, *, path: str | os.PathLike[str], max_bytes: int = 100_000_000,
                 keep: int = 5, fsync: bool = True, json_date_key: str | None = "date") -> None:
        if max_bytes < 1:
            raise SinkError("file: max_bytes must be at least 1")
        if keep < 0:
            raise SinkError("file: keep must be 0 or more")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.keep = keep
        self.fsync = fsync
        self._date_key = json_date_key
        self._fd: int | None = None
        self._size = 0
        self.records_out = 0
        self.rotations = 0

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise SinkError(f"file: cannot open {self.path}: {exc.strerror}") from exc
        self._size = os.fstat(self._fd).st_size

    def write(self, batch: Batch) -> Result:
        if self._fd is None:
            self.open()
        data = json_lines(batch.entries, self._date_key)
        try:
            if self._size and self._size + len(data) > self.max_bytes:
                self._rotate()
            assert self._fd is not None
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
            if self.fsync:
                os.fsync(self._fd)
        except OSError:
            # Disk full or similar: the sender keeps the data and tries again later.
            return Result.RETRY
        self._size += len(data)
        self.records_out += len(batch)
        return Result.OK

    def _rotate(self) -> None:
        assert self._fd is not None
        os.close(self._fd)
        self._fd = None
        if self.keep == 0:
            self.path.unlink(missing_ok=True)
        else:
            oldest = self._numbered(self.keep)
            oldest.unlink(missing_ok=True)
            for n in range(self.keep - 1, 0, -1):
                src = self._numbered(n)
                if src.exists():
                    src.rename(self._numbered(n + 1))
            self.path.rename(self._numbered(1))
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = 0
        self.rotations += 1

    def _numbered(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}")

    def flush(self, now: float, *, force: bool = False) -> Result:
        return Result.OK

    def close(self) -> Result:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        return Result.OK
