"""``SINKS``: the one registry of built-in outputs, name -> factory(options, context).

Option names are Fluent Bit's (fluentbit.md 3.4), so a ``serve`` output section reads like the
Fluent Bit output it replaces. Factories import boto3 only when they are called.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from qtap_fluent.sinks.base import Sink, SinkError
from qtap_fluent.sinks.options import Options


@dataclass(frozen=True, slots=True, kw_only=True)
class SinkContext:
    """What a factory may need besides its options."""

    spool_dir: Path  #: parent of every sink's spool folder
    stdout: BinaryIO | None = None
    #: Check options only: build no AWS client (so ``validate`` never imports boto3).
    dry_run: bool = False


SinkFactory = Callable[[Options, SinkContext], Sink]


def _stdout(o: Options, ctx: SinkContext) -> Sink:
    from qtap_fluent.sinks.stdout import StdoutSink

    fmt = (o.text("format", "json_lines") or "").lower()
    if fmt not in ("json_lines", "json"):
        raise SinkError(f"stdout: format {fmt!r} is not supported here (json_lines)")
    return StdoutSink(stream=ctx.stdout, json_date_key=o.date_key())


def _file(o: Options, ctx: SinkContext) -> Sink:
    from qtap_fluent.sinks.file import FileSink

    path = o.text("path") or o.text("file")
    if not path:
        raise SinkError("file: 'path' is required")
    return FileSink(path=path, max_bytes=o.size("max_size", 100_000_000),
                    keep=o.integer("keep", 5), fsync=o.flag("fsync", True),
                    json_date_key=o.date_key())


def _s3(o: Options, ctx: SinkContext) -> Sink:
    from qtap_fluent.sinks import s3
    from qtap_fluent.sinks.limits import (
        FB_S3_DEFAULT_CHUNK,
        FB_S3_DEFAULT_TOTAL_FILE_SIZE,
        FB_S3_DEFAULT_UPLOAD_TIMEOUT,
    )
    from qtap_fluent.sinks.s3keys import DEFAULT_KEY_FORMAT

    bucket = o.require("bucket")
    key_format = o.text("s3_key_format", DEFAULT_KEY_FORMAT) or DEFAULT_KEY_FORMAT
    if not key_format.startswith("/"):
        raise SinkError("s3: s3_key_format must start with '/' (as in Fluent Bit)")
    compression = o.text("compression")
    store = o.text("store_dir")
    region, endpoint = o.text("region", "us-east-1"), o.text("endpoint")
    client = None if ctx.dry_run else s3.make_client(region=region, endpoint=endpoint)
    return s3.S3Sink(
        client=client, bucket=bucket,
        spool_dir=Path(store) if store else ctx.spool_dir / "s3",
        s3_key_format=key_format,
        tag_delimiters=o.text("s3_key_format_tag_delimiters", ".") or ".",
        total_file_size=o.size("total_file_size", FB_S3_DEFAULT_TOTAL_FILE_SIZE),
        upload_chunk_size=o.size("upload_chunk_size", FB_S3_DEFAULT_CHUNK),
        upload_timeout=o.duration("upload_timeout", FB_S3_DEFAULT_UPLOAD_TIMEOUT),
        compression=None if compression in (None, "none") else compression,
        use_put_object=o.flag("use_put_object", False),
        static_file_path=o.flag("static_file_path", False),
        content_type=o.text("content_type"), json_date_key=o.date_key(),
        store_dir_limit_size=o.size("store_dir_limit_size", 0),
        fsync=o.flag("fsync", True))


def _cloudwatch(o: Options, ctx: SinkContext) -> Sink:
    from qtap_fluent.sinks import cloudwatch

    region, endpoint = o.require("region"), o.text("endpoint")
    client = None if ctx.dry_run else cloudwatch.make_client(region=region, endpoint=endpoint)
    return cloudwatch.CloudWatchSink(
        client=client, log_group_name=o.require("log_group_name"),
        log_stream_name=o.text("log_stream_name"), log_stream_prefix=o.text("log_stream_prefix"),
        auto_create_group=o.flag("auto_create_group", False),
        log_retention_days=o.integer("log_retention_days", 0), log_key=o.text("log_key"))


def _forward(o: Options, ctx: SinkContext) -> Sink:
    from qtap_fluent.sinks.forward import ForwardSink

    return ForwardSink(host=o.text("host", "127.0.0.1") or "127.0.0.1",
                       port=o.integer("port", 24224), tag=o.text("tag"),
                       timeout=o.duration("timeout", 10.0))


#: Built-in outputs by name. ``cloudwatch`` is an alias of Fluent Bit's ``cloudwatch_logs``.
SINKS: Mapping[str, SinkFactory] = {
    "stdout": _stdout,
    "file": _file,
    "s3": _s3,
    "cloudwatch_logs": _cloudwatch,
    "cloudwatch": _cloudwatch,
    "forward": _forward,
}


def build_sink(name: str, options: Mapping[str, Any], context: SinkContext,
               *, ignore: frozenset[str] = frozenset()) -> Sink:
    """Build the built-in sink ``name``; SinkError for an unknown name, bad or unknown option."""
    factory = SINKS.get(name.lower())
    if factory is None:
        raise SinkError(f"unknown output {name!r}; built-in outputs: {', '.join(sorted(SINKS))}")
    opts = Options(name, options)
    sink = factory(opts, context)
    extra = opts.unknown(ignore)
    if extra:
        raise SinkError(f"{name}: unknown option(s): {', '.join(extra)}")
    return sink
