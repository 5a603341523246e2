"""``s3`` sink: JSON lines spooled locally, rotated by size and age, uploaded once per object.

Design (why a kill loses nothing and nothing is uploaded twice):

* **Spool first.** ``write`` appends the batch to the tag's open object under ``spool_dir`` and
  fsyncs it (``spool.py``) before answering OK; only then may ``serve`` ack the sender. Bytes
  written after the last committed length belong to an unacked batch and are cut off on restart.
  If the disk fails half-way through a batch of several tags, the sink remembers which tags of
  that ``Batch.seq`` were spooled and the retry appends only the others.
* **The key is decided once.** When an object is created its key is expanded from
  ``s3_key_format`` (time of its first record, ``$INDEX`` advanced and persisted first,
  ``$UUID`` drawn once) and stored with it. A restart uploads to the same key, never to a new one.
* **Idempotent completion.** Every object carries ``x-amz-meta-qtap-spool-id`` = its spool id.
  Before uploading an object that a previous run may already have sent (state ``uploading``),
  the sink asks ``HeadObject``; if the key holds our spool id the upload is done and the spool
  files are deleted. A multipart upload id and each finished part's ETag are persisted, so a
  restart resumes the same upload (re-sending a part number simply replaces that part); if the
  upload id is gone (completed or aborted) the HeadObject check decides.
* **Rotation.** An object is sealed when the next batch would take it past
  ``total_file_size`` or when it is ``upload_timeout`` old (checked by ``flush``). Sealed
  objects are uploaded by ``flush``/``close``: PutObject up to ``upload_chunk_size``, multipart
  above it, with parts of at least 5 MiB and at most 10,000 of them (``limits.py``).
* **Bounded spool.** With ``store_dir_limit_size`` set, ``write`` answers RETRY while the spool
  holds that much, so Fluent Bit keeps the data instead of us dropping it.
"""

from __future__ import annotations

import gzip
import logging
import math
import os
import shutil
import time
import uuid as uuidlib
from pathlib import Path
from typing import Any

from qtap_fluent.sinks.base import Batch, Entry, Result, SinkError, json_lines
from qtap_fluent.sinks.limits import (
    FB_S3_DEFAULT_CHUNK,
    FB_S3_DEFAULT_TOTAL_FILE_SIZE,
    FB_S3_DEFAULT_UPLOAD_TIMEOUT,
    S3_MAX_PART_SIZE,
    S3_MAX_PARTS,
    S3_MAX_PUT_OBJECT,
    S3_MIN_PART_SIZE,
)
from qtap_fluent.sinks.s3keys import DEFAULT_KEY_FORMAT, format_key, has_unique_token, random_suffix
from qtap_fluent.sinks.spool import Spool, SpoolObject

log = logging.getLogger("qtap_fluent.sinks.s3")

SPOOL_ID_META = "qtap-spool-id"  #: sent as x-amz-meta-qtap-spool-id
#: Longest wait between two upload attempts of one object (seconds).
MAX_UPLOAD_BACKOFF = 300.0


def part_size_for(total: int, chunk: int) -> int:
    """Part size for a ``total``-byte object: ``chunk`` or larger so 10,000 parts suffice."""
    size = max(chunk, S3_MIN_PART_SIZE, math.ceil(total / S3_MAX_PARTS))
    if size > S3_MAX_PART_SIZE:
        raise SinkError(f"s3: object of {total} bytes exceeds what 10,000 parts can hold")
    return size


def make_client(*, region: str | None = None, endpoint: str | None = None,
                max_attempts: int = 3) -> Any:
    """A boto3 S3 client with the standard credential chain; path-style when ``endpoint``."""
    import boto3  # lazy: gen/validate never import boto3
    from botocore.config import Config

    config = Config(s3={"addressing_style": "path"} if endpoint else {},
                    retries={"mode": "standard", "max_attempts": max_attempts})
    return boto3.client("s3", region_name=region or "us-east-1", endpoint_url=endpoint,
                        config=config)


class S3Sink:
    """Spool records per tag, upload rotated objects to ``bucket``. The boto3 client is passed in."""

    name = "s3"

    def __init__(self, *, client: Any, bucket: str, spool_dir: str | os.PathLike[str],
                 s3_key_format: str = DEFAULT_KEY_FORMAT, tag_delimiters: str = ".",
                 total_file_size: int = FB_S3_DEFAULT_TOTAL_FILE_SIZE,
                 upload_chunk_size: int = FB_S3_DEFAULT_CHUNK,
                 upload_timeout: float = FB_S3_DEFAULT_UPLOAD_TIMEOUT,
                 compression: str | None = None, use_put_object: bool = False,
                 static_file_path: bool = False, content_type: str | None = None,
                 json_date_key: str | None = "date", store_dir_limit_size: int = 0,
                 fsync: bool = True, clock: Any = time.time) -> None:
        if not bucket:
            raise SinkError("s3: 'bucket' is required")
        if compression not in (None, "none", "gzip"):
            raise SinkError(f"s3: compression {compression!r} is not supported (gzip or none)")
        if upload_chunk_size < S3_MIN_PART_SIZE:
            raise SinkError(f"s3: upload_chunk_size must be at least {S3_MIN_PART_SIZE}")
        if total_file_size < 1:
            raise SinkError("s3: total_file_size must be positive")
        self.client = client
        self.bucket = bucket
        self.key_format = s3_key_format
        self.tag_delimiters = tag_delimiters
        self.total_file_size = total_file_size
        self.chunk = upload_chunk_size
        self.upload_timeout = upload_timeout
        self.gzip = compression == "gzip"
        self.use_put_object = use_put_object
        self.static_file_path = static_file_path
        self.content_type = content_type
        self.date_key = json_date_key
        self.limit = store_dir_limit_size
        self.clock = clock
        self.spool = Spool(Path(spool_dir) / bucket, fsync=fsync)
        self._open: dict[str, SpoolObject] = {}
        self._sealed: list[SpoolObject] = []
        self._held = 0
        self._partial: tuple[int, set[str]] | None = None
        self._backoff: dict[str, tuple[int, float]] = {}  #: oid -> (failures, next try)
        self.stats = {"records_in": 0, "objects_uploaded": 0, "upload_errors": 0,
                      "recovered": 0, "spool_full": 0}

    # --- lifecycle -----------------------------------------------------------------------
    def open(self) -> None:
        """Create the spool and take over what a previous run left (sealed for upload)."""
        try:
            self.spool.setup()
            recovered = self.spool.recover()
        except BlockingIOError:
            raise SinkError(f"s3: spool {self.spool.root} is in use by another process "
                            "(give each serve its own spool)") from None
        except OSError as exc:
            raise SinkError(f"s3: spool {self.spool.root}: {exc}") from exc
        for obj in recovered:
            if obj.state == "open":
                if obj.size == 0:
                    self.spool.remove(obj)
                    continue
                self.spool.seal(obj)
            self._sealed.append(obj)
            self._held += obj.size
        self.stats["recovered"] = len(self._sealed)
        if self._sealed:
            log.info("s3: recovered %d object(s) from %s; they upload on the next flush",
                     len(self._sealed), self.spool.root)

    def write(self, batch: Batch) -> Result:
        """Spool ``batch`` (one object per tag); OK once it is on disk."""
        if self.limit and self._held >= self.limit:
            self.stats["spool_full"] += 1
            return Result.RETRY
        by_tag: dict[str, list[Entry]] = {}
        for entry in batch.entries:
            by_tag.setdefault(entry.tag, []).append(entry)
        # Tags of this batch already spooled by an earlier attempt that answered RETRY.
        done = self._partial[1] if self._partial and self._partial[0] == batch.seq else set()
        try:
            for tag, entries in by_tag.items():
                if tag in done:
                    continue
                data = json_lines(entries, self.date_key)
                obj = self._open.get(tag)
                if obj is not None and obj.size and obj.size + len(data) > self.total_file_size:
                    self._seal(obj)
                    obj = None
                if obj is None:
                    obj = self._create(tag, entries[0].time)
                self.spool.append(obj, data, len(entries))
                self._held += len(data)
                done.add(tag)
                if obj.size >= self.total_file_size:
                    self._seal(obj)
        except OSError:
            # Disk full or gone. Remember which tags made it, so the retry of this batch
            # (same seq) appends only the rest.
            self._partial = (batch.seq, done)
            return Result.RETRY
        self._partial = None
        self.stats["records_in"] += len(batch)
        return Result.OK

    def flush(self, now: float, *, force: bool = False) -> Result:
        """Seal objects older than ``upload_timeout`` (all with ``force``), upload sealed ones."""
        for obj in list(self._open.values()):
            if force or now - obj.created >= self.upload_timeout:
                self._seal(obj)
        result = Result.OK
        for obj in list(self._sealed):
            attempts, not_before = self._backoff.get(obj.oid, (0, 0.0))
            if not force and now < not_before:
                result = Result.RETRY
                continue
            if self._upload(obj):
                self._backoff.pop(obj.oid, None)
                continue
            result = Result.RETRY
            # Exponential backoff per object (1 s doubling to 5 min): a missing bucket or
            # revoked credentials must not turn every flush tick into a request storm.
            attempts += 1
            self._backoff[obj.oid] = (attempts, now + min(MAX_UPLOAD_BACKOFF, 2.0 ** (attempts - 1)))
        return result

    def close(self) -> Result:
        """Upload everything held; what cannot be uploaded stays spooled for the next run."""
        result = self.flush(self.clock(), force=True)
        self.spool.close()
        return result

    @property
    def pending_objects(self) -> int:
        return len(self._open) + len(self._sealed)

    # --- objects -------------------------------------------------------------------------
    def _create(self, tag: str, first_time: float) -> SpoolObject:
        index = self.spool.next_index() if "$INDEX" in self.key_format else 0
        key = format_key(self.key_format, tag=tag, time_s=first_time, index=index,
                         uuid=random_suffix(), delimiters=self.tag_delimiters)
        if not self.static_file_path and not has_unique_token(self.key_format):
            # Fluent Bit appends "-object" + 8 random characters so objects never collide.
            key += "-object" + random_suffix()
        obj = SpoolObject(oid=uuidlib.uuid4().hex, key=key, tag=tag, created=self.clock())
        self.spool.create(obj)
        self._open[tag] = obj
        return obj

    def _seal(self, obj: SpoolObject) -> None:
        self._open.pop(obj.tag, None)
        self.spool.seal(obj)
        self._sealed.append(obj)

    def _payload(self, obj: SpoolObject) -> Path:
        data = self.spool.data_path(obj)
        if not self.gzip:
            return data
        gz = data.with_suffix(".gz")
        # mtime=0 makes the bytes a pure function of the data: a re-upload is identical.
        with (open(data, "rb") as src, open(gz, "wb") as raw,
              gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as dst):
            shutil.copyfileobj(src, dst, 1 << 20)
        return gz

    def _extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.content_type:
            extra["ContentType"] = self.content_type
        if self.gzip:
            extra["ContentEncoding"] = "gzip"
        return extra

    def _upload(self, obj: SpoolObject) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            if obj.state == "uploading" and obj.upload_id is None and self._already_there(obj):
                self._done(obj)
                return True
            obj.state = "uploading"
            self.spool.save(obj)
            payload = self._payload(obj)
            size = payload.stat().st_size
            if self.use_put_object or size <= self.chunk:
                if size > S3_MAX_PUT_OBJECT:
                    raise SinkError(f"s3: {size} bytes is over the PutObject limit")
                with open(payload, "rb") as body:
                    self.client.put_object(Bucket=self.bucket, Key=obj.key, Body=body,
                                           Metadata={SPOOL_ID_META: obj.oid}, **self._extra())
            else:
                self._multipart(obj, payload, size)
        except (ClientError, BotoCoreError, OSError, SinkError) as exc:
            # Kept in the spool; a later flush tries again (Fluent Bit would retry too).
            self.stats["upload_errors"] += 1
            log.warning("s3: upload of s3://%s/%s failed, kept in the spool: %s",
                        self.bucket, obj.key, exc)
            return False
        self._done(obj)
        return True

    def _multipart(self, obj: SpoolObject, payload: Path, size: int) -> None:
        from botocore.exceptions import ClientError

        if obj.upload_id is not None:
            try:
                self.client.list_parts(Bucket=self.bucket, Key=obj.key, UploadId=obj.upload_id)
            except ClientError as exc:
                if _code(exc) != "NoSuchUpload":
                    raise
                # Completed (or aborted) by a previous run: HeadObject decides.
                if self._already_there(obj):
                    return
                obj.upload_id, obj.parts = None, []
        if obj.upload_id is None:
            resp = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=obj.key, Metadata={SPOOL_ID_META: obj.oid},
                **self._extra())
            obj.upload_id = resp["UploadId"]
            self.spool.save(obj)
        part_size = part_size_for(size, self.chunk)
        done = {p["PartNumber"] for p in obj.parts}
        with open(payload, "rb") as body:
            for number in range(1, math.ceil(size / part_size) + 1):
                if number in done:
                    continue
                body.seek((number - 1) * part_size)
                chunk = body.read(part_size)
                resp = self.client.upload_part(Bucket=self.bucket, Key=obj.key,
                                               UploadId=obj.upload_id, PartNumber=number,
                                               Body=chunk)
                obj.parts.append({"PartNumber": number, "ETag": resp["ETag"]})
                self.spool.save(obj)
        parts = sorted(obj.parts, key=lambda p: int(p["PartNumber"]))
        try:
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=obj.key, UploadId=obj.upload_id,
                MultipartUpload={"Parts": parts})
        except ClientError as exc:
            if _code(exc) != "NoSuchUpload" or not self._already_there(obj):
                raise

    def _already_there(self, obj: SpoolObject) -> bool:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=obj.key)
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return bool(head.get("Metadata", {}).get(SPOOL_ID_META) == obj.oid)

    def _done(self, obj: SpoolObject) -> None:
        self.spool.remove(obj)
        if obj in self._sealed:
            self._sealed.remove(obj)
        self._held = max(0, self._held - obj.size)
        self.stats["objects_uploaded"] += 1


def _code(exc: Any) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
