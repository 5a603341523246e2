"""``cloudwatch_logs`` sink: PutLogEvents batches that respect every limit, throttling survived.

The split (``plan_requests``) is pure: sort by timestamp (PutLogEvents wants chronological
order), drop events that can never be sent (over 1 MB including the 26-byte overhead), then cut a
new request before an event that would exceed 10,000 events, 1,048,576 bytes (UTF-8 message +
26 bytes each) or a 24-hour span. The numbers live in ``limits.py`` with their source.

A batch may need several requests. If request 3 of 5 stays throttled after ``max_attempts``
tries, ``write`` answers RETRY and remembers that requests 1-2 of this ``Batch.seq`` went out, so
the retry resumes at 3 and no event is sent twice.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from qtap_fluent.sinks.base import Batch, Entry, Result, SinkError, dumps_record
from qtap_fluent.sinks.batching import Batcher
from qtap_fluent.sinks.limits import (
    CW_EVENT_OVERHEAD,
    CW_MAX_BATCH_BYTES,
    CW_MAX_BATCH_EVENTS,
    CW_MAX_EVENT_BYTES,
    CW_MAX_SPAN_MS,
    CW_RETENTION_DAYS,
)

#: Error codes that mean "slow down and try again" (CloudWatch Logs API reference: Errors).
THROTTLE_CODES = frozenset({"ThrottlingException", "Throttling", "ServiceUnavailableException",
                            "RequestLimitExceeded", "TooManyRequestsException"})

#: Error codes where resending the same request cannot succeed.
PERMANENT_CODES = frozenset({"InvalidParameterException", "DataAlreadyAcceptedException"})


@dataclass(frozen=True, slots=True)
class LogEvent:
    timestamp: int  #: milliseconds since the epoch
    message: str
    size: int  #: UTF-8 bytes of message + CW_EVENT_OVERHEAD


def make_event(timestamp_ms: int, message: str) -> LogEvent:
    return LogEvent(timestamp_ms, message, len(message.encode("utf-8")) + CW_EVENT_OVERHEAD)


def plan_requests(events: Sequence[LogEvent]) -> tuple[list[list[LogEvent]], list[LogEvent]]:
    """Split ``events`` into PutLogEvents requests; return ``(requests, too_large)``."""
    fits = [e for e in events if e.size <= CW_MAX_EVENT_BYTES]
    too_large = [e for e in events if e.size > CW_MAX_EVENT_BYTES]
    fits.sort(key=lambda e: e.timestamp)  # stable: equal timestamps keep arrival order
    # Timestamps are the batcher's clock: a request never spans CW_MAX_SPAN_MS or more.
    batcher: Batcher[LogEvent] = Batcher(max_count=CW_MAX_BATCH_EVENTS,
                                         max_bytes=CW_MAX_BATCH_BYTES, max_age=CW_MAX_SPAN_MS)
    requests: list[list[LogEvent]] = []
    for event in fits:
        requests.extend(batcher.add(event, event.size, event.timestamp))
    last = batcher.drain()
    if last:
        requests.append(last)
    return requests, too_large


def make_client(*, region: str | None = None, endpoint: str | None = None) -> Any:
    """A boto3 CloudWatch Logs client with the standard credential chain."""
    import boto3  # lazy: gen/validate never import boto3

    return boto3.client("logs", region_name=region or "us-east-1", endpoint_url=endpoint)


class CloudWatchSink:
    """Send records to one log group, one stream per name or per tag (prefix + tag)."""

    name = "cloudwatch_logs"

    def __init__(self, *, client: Any, log_group_name: str, log_stream_name: str | None = None,
                 log_stream_prefix: str | None = None, auto_create_group: bool = False,
                 log_retention_days: int = 0, log_key: str | None = None,
                 max_attempts: int = 6, base_delay: float = 0.2, max_delay: float = 10.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not log_group_name:
            raise SinkError("cloudwatch_logs: 'log_group_name' is required")
        if (log_stream_name is None) == (log_stream_prefix is None):
            raise SinkError("cloudwatch_logs: exactly one of 'log_stream_name' or "
                            "'log_stream_prefix' is required")
        if log_retention_days and log_retention_days not in CW_RETENTION_DAYS:
            raise SinkError(f"cloudwatch_logs: log_retention_days {log_retention_days} is not "
                            f"one of {sorted(CW_RETENTION_DAYS)}")
        self.client = client
        self.group = log_group_name
        self.stream_name = log_stream_name
        self.stream_prefix = log_stream_prefix
        self.auto_create_group = auto_create_group
        self.retention = log_retention_days
        self.log_key = log_key
        self.max_attempts = max(1, max_attempts)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.sleep = sleep
        self._streams: set[str] = set()
        self._resume: tuple[int, int] | None = None  #: (batch seq, requests already sent)
        self.stats = {"records_out": 0, "requests": 0, "throttled": 0, "too_large": 0,
                      "rejected": 0}

    def open(self) -> None:
        """Create the group (when asked) and set its retention."""
        if self.auto_create_group:
            self._create("create_log_group", logGroupName=self.group)
        if self.retention:
            self.client.put_retention_policy(logGroupName=self.group,
                                             retentionInDays=self.retention)

    def _stream_for(self, tag: str) -> str:
        return self.stream_name if self.stream_name is not None else f"{self.stream_prefix}{tag}"

    def _message(self, entry: Entry) -> str:
        if self.log_key is not None:
            value = entry.record.get(self.log_key)
            if isinstance(value, str):
                return value
            return "" if value is None else json.dumps(value, separators=(",", ":"), default=str)
        return dumps_record(entry.record)

    def _create(self, operation: str, **kwargs: Any) -> None:
        from botocore.exceptions import ClientError

        try:
            getattr(self.client, operation)(**kwargs)
        except ClientError as exc:
            if _code(exc) != "ResourceAlreadyExistsException":
                raise

    def write(self, batch: Batch) -> Result:
        """Send ``batch``; RETRY keeps the position so the same ``seq`` resumes there."""
        from botocore.exceptions import BotoCoreError, ClientError

        by_stream: dict[str, list[LogEvent]] = {}
        for entry in batch.entries:
            event = make_event(int(entry.time * 1000), self._message(entry))
            by_stream.setdefault(self._stream_for(entry.tag), []).append(event)
        units: list[tuple[str, list[LogEvent]]] = []
        for stream, events in by_stream.items():
            requests, too_large = plan_requests(events)
            self.stats["too_large"] += len(too_large)
            units.extend((stream, r) for r in requests)
        start = self._resume[1] if self._resume and self._resume[0] == batch.seq else 0
        for i in range(start, len(units)):
            stream, events = units[i]
            try:
                sent = self._put(stream, events)
            except ClientError as exc:
                if _code(exc) in PERMANENT_CODES:
                    # Trying again sends the same bad request; skip this one, keep the rest.
                    self.stats["rejected"] += len(events)
                    continue
                self._resume = (batch.seq, i)
                return Result.RETRY
            except BotoCoreError:
                self._resume = (batch.seq, i)
                return Result.RETRY
            if not sent:
                self._resume = (batch.seq, i)
                return Result.RETRY
            self.stats["records_out"] += len(events)
        self._resume = None
        return Result.OK

    def _put(self, stream: str, events: list[LogEvent]) -> bool:
        """One PutLogEvents call with backoff on throttling; False when still throttled."""
        from botocore.exceptions import ClientError

        payload = [{"timestamp": e.timestamp, "message": e.message} for e in events]
        for attempt in range(self.max_attempts):
            if stream not in self._streams:
                self._ensure_stream(stream)
            try:
                self.client.put_log_events(logGroupName=self.group, logStreamName=stream,
                                           logEvents=payload)
                self.stats["requests"] += 1
                return True
            except ClientError as exc:
                code = _code(exc)
                if code == "ResourceNotFoundException":
                    self._streams.discard(stream)  # deleted behind our back: recreate
                elif code not in THROTTLE_CODES:
                    raise
                else:
                    self.stats["throttled"] += 1
            if attempt + 1 < self.max_attempts:
                # Exponential backoff with "equal jitter" (AWS Architecture Blog, 2015).
                delay = min(self.max_delay, self.base_delay * 2 ** attempt)
                self.sleep(delay / 2 + random.uniform(0, delay / 2))
        return False

    def _ensure_stream(self, stream: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self._create("create_log_stream", logGroupName=self.group, logStreamName=stream)
        except ClientError as exc:
            if _code(exc) != "ResourceNotFoundException" or not self.auto_create_group:
                raise
            self._create("create_log_group", logGroupName=self.group)
            self._create("create_log_stream", logGroupName=self.group, logStreamName=stream)
        self._streams.add(stream)

    def flush(self, now: float, *, force: bool = False) -> Result:
        return Result.OK

    def close(self) -> Result:
        return Result.OK


def _code(exc: Any) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
