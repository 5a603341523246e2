"""The S3 sink's local spool: objects being filled and objects waiting to be uploaded.

Layout of ``<spool_dir>/<bucket>/``::

    index                 next $INDEX value (decimal text), advanced before it is used
    <oid>.data            the object's JSON lines, appended batch by batch
    <oid>.len             committed length of .data (20 ASCII digits, rewritten in place)
    <oid>.json            metadata: key, tag, state, multipart upload id and finished parts

Durability rule: ``append`` writes the batch, fsyncs ``.data``, then rewrites ``.len``. A batch
is acknowledged only after that, so bytes of ``.data`` past ``.len`` belong to a batch that was
never acked (the process died in between); recovery cuts them off, and the sender resends the
batch. Metadata is replaced atomically (write a temporary file, fsync, rename).
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

_LEN_WIDTH = 20


@dataclass(slots=True)
class SpoolObject:
    """Metadata of one spooled object (persisted in ``<oid>.json``)."""

    oid: str
    key: str
    tag: str
    created: float  #: wall-clock seconds when the first record arrived
    state: str = "open"  #: open -> sealed -> uploading -> (files deleted)
    upload_id: str | None = None
    parts: list[dict[str, Any]] = field(default_factory=list)  #: [{PartNumber, ETag}]
    size: int = 0  #: committed bytes of .data (mirrors .len; not persisted in .json)
    records: int = 0


class Spool:
    """Files under one directory; every method does its own I/O and fsync."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(root)
        self.fsync = fsync
        self._fds: dict[str, int] = {}
        self._lock_fd: int | None = None

    def setup(self) -> None:
        """Create the folder and take its lock: two processes on one spool would upload the
        same objects and reuse $INDEX values. The kernel drops the lock when we die (even by
        SIGKILL), so a restart never finds a stale lock. BlockingIOError: held by another."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise
        self._lock_fd = fd

    # --- $INDEX --------------------------------------------------------------------------
    def next_index(self) -> int:
        """Return the next $INDEX and persist its successor first (never reused after a crash)."""
        path = self.root / "index"
        try:
            value = int(path.read_text().strip() or "0")
        except (FileNotFoundError, ValueError):
            value = 0
        self._atomic_write(path, f"{value + 1}\n".encode())
        return value

    # --- objects -------------------------------------------------------------------------
    def create(self, obj: SpoolObject) -> None:
        fd = os.open(self._path(obj.oid, "data"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._fds[obj.oid] = fd
        self._write_len(obj.oid, 0)
        self.save(obj)

    def append(self, obj: SpoolObject, data: bytes, records: int) -> None:
        """Append ``data`` durably; raises OSError (the caller answers RETRY)."""
        fd = self._fds.get(obj.oid)
        if fd is None:
            fd = os.open(self._path(obj.oid, "data"), os.O_WRONLY | os.O_APPEND)
            self._fds[obj.oid] = fd
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view):]
            if self.fsync:
                os.fsync(fd)
        except OSError:
            # Undo the partial append so the file again ends at the committed length.
            os.ftruncate(fd, obj.size)
            raise
        obj.size += len(data)
        obj.records += records
        self._write_len(obj.oid, obj.size)

    def seal(self, obj: SpoolObject) -> None:
        fd = self._fds.pop(obj.oid, None)
        if fd is not None:
            os.close(fd)
        obj.state = "sealed"
        self.save(obj)

    def save(self, obj: SpoolObject) -> None:
        meta = asdict(obj)
        meta.pop("size")
        self._atomic_write(self._path(obj.oid, "json"), json.dumps(meta).encode())

    def data_path(self, obj: SpoolObject) -> Path:
        return self._path(obj.oid, "data")

    def remove(self, obj: SpoolObject) -> None:
        fd = self._fds.pop(obj.oid, None)
        if fd is not None:
            os.close(fd)
        for ext in ("data", "len", "gz"):
            self._path(obj.oid, ext).unlink(missing_ok=True)
        # The metadata goes last: while it exists, recovery knows the object.
        self._path(obj.oid, "json").unlink(missing_ok=True)

    def recover(self) -> list[SpoolObject]:
        """Every object left by a previous run, cut back to its committed length."""
        found: list[SpoolObject] = []
        for meta_path in sorted(self.root.glob("*.json")):
            try:
                meta = json.loads(meta_path.read_text())
                obj = SpoolObject(**meta)
            except (OSError, ValueError, TypeError):
                continue  # a torn temporary never becomes *.json; anything else is not ours
            data = self._path(obj.oid, "data")
            if not data.exists():
                meta_path.unlink(missing_ok=True)
                continue
            obj.size = self._read_len(obj.oid, data)
            if data.stat().st_size > obj.size:
                os.truncate(data, obj.size)
            found.append(obj)
        return found

    def bytes_held(self) -> int:
        return sum(p.stat().st_size for p in self.root.glob("*.data"))

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    # --- helpers -------------------------------------------------------------------------
    def _path(self, oid: str, ext: str) -> Path:
        return self.root / f"{oid}.{ext}"

    def _write_len(self, oid: str, size: int) -> None:
        # 20 bytes rewritten at offset 0: one sector, so a reader sees old or new, never a mix.
        path = self._path(oid, "len")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, str(size).rjust(_LEN_WIDTH).encode(), 0)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)

    def _read_len(self, oid: str, data: Path) -> int:
        try:
            return int(self._path(oid, "len").read_bytes().strip() or b"0")
        except (FileNotFoundError, ValueError):
            # Sealed objects written before .len existed: trust whole lines only.
            raw = data.read_bytes()
            return raw.rfind(b"\n") + 1

    def _atomic_write(self, path: Path, payload: bytes) -> None:
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, payload)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
