"""The sink contract: ``open()``, ``write(batch) -> Result``, ``flush(now)``, ``close()``.

Modelled on Fluent Bit's output plugins (``FLB_OK`` / ``FLB_RETRY`` / ``FLB_ERROR``): a sink says
*whether* a batch was accepted, the runner decides *when* to try again. ``OK`` means the batch is
durable from the sender's point of view (written, or spooled to local disk), so the server may ack
it. ``RETRY`` means nothing of the batch was kept *or* the sink remembers how far it got (see
``Batch.seq``) and will resume there; ``ERROR`` means trying again cannot help.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from qtap_fluent.errors import QtapFluentError

Record = Mapping[str, Any]


class Result(enum.Enum):
    """What a sink answers for one batch."""

    OK = "ok"
    RETRY = "retry"
    ERROR = "error"


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One event: the tag it was routed by, its time (seconds since the epoch, UTC) and record."""

    tag: str
    time: float
    record: Record


@dataclass(frozen=True, slots=True, kw_only=True)
class Batch:
    """Entries handed to one sink in one call.

    ``seq`` identifies the batch: when the runner offers the same batch again after ``RETRY`` it
    passes the same ``seq``, so a sink that sent part of it (CloudWatch splits a batch into
    several requests) resumes instead of sending the first part twice.
    """

    seq: int
    entries: tuple[Entry, ...]

    def __len__(self) -> int:
        return len(self.entries)


@runtime_checkable
class Sink(Protocol):
    """What every output implements. None of the methods may raise for bad *data*."""

    name: str

    def open(self) -> None:
        """Acquire resources (create the log group, recover the spool, ...)."""

    def write(self, batch: Batch) -> Result:
        """Accept ``batch`` durably (OK), not now (RETRY) or never (ERROR)."""

    def flush(self, now: float, *, force: bool = False) -> Result:
        """Do time-driven work due at ``now`` (upload rotated objects); ``force`` does it all."""

    def close(self) -> Result:
        """Flush everything held and release resources."""


class SinkError(QtapFluentError):
    """A sink could not be built or opened (bad option, unwritable spool, no credentials)."""


def _json_default(value: Any) -> Any:
    # msgpack hands us bytes for bin fields; JSON has no bytes, so decode leniently.
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def _sanitize(value: Any) -> Any:
    # json.dumps emits NaN/Infinity which are not JSON (RFC 8259 section 6); send null instead.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _sanitize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_sanitize(v) for v in value]
    return value


#: One encoder reused for every record: ``json.dumps`` with options builds a new one per call,
#: which was a quarter of the file sink's time (bench/bench_serve.py profile).
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_json_default,
                           allow_nan=False).encode


def _dumps_std(record: Record) -> str:
    try:
        return _ENCODE(record)
    except ValueError:
        return _ENCODE(_sanitize(record))


def _line_std(record: Record) -> bytes:
    return (_dumps_std(record) + "\n").encode("utf-8")


def _make_encoders() -> tuple[Callable[[Record], str], Callable[[Record], bytes]]:
    # orjson, when installed (optional), encodes qtap records ~5x faster; the output is the same
    # compact UTF-8 JSON (NaN/Infinity become null in both paths).
    try:
        import orjson
    except ImportError:
        return _dumps_std, _line_std
    opts = orjson.OPT_NON_STR_KEYS
    line_opts = opts | orjson.OPT_APPEND_NEWLINE

    def dumps(record: Record) -> str:
        try:
            return orjson.dumps(record, default=_json_default, option=opts).decode("utf-8")
        except TypeError:
            return _dumps_std(record)  # e.g. integers beyond 64 bits

    def line(record: Record) -> bytes:
        try:
            return orjson.dumps(record, default=_json_default, option=line_opts)
        except TypeError:
            return _line_std(record)

    return dumps, line


#: ``dumps_record``: compact JSON text of a record; ``_line``: the same as UTF-8 bytes plus a
#: newline. Neither raises for msgpack-decoded data.
dumps_record, _line = _make_encoders()


def json_line(entry: Entry, date_key: str | None = None) -> bytes:
    """One JSON-lines line for ``entry``, like Fluent Bit's ``json_lines`` format.

    With ``date_key`` the event time is added first as a double (Fluent Bit's default
    ``json_date_key date`` / ``json_date_format double``).
    """
    if date_key:
        return _line({date_key: entry.time, **entry.record})
    return _line(entry.record)


def json_lines(entries: Iterable[Entry], date_key: str | None = None) -> bytes:
    """``json_line`` of every entry, concatenated."""
    if date_key:
        return b"".join([_line({date_key: e.time, **e.record}) for e in entries])
    return b"".join([_line(e.record) for e in entries])
