"""s3, cloudwatch_logs and stdout value rules: what the plugins check at init (after dry-run
said "configuration test is successful") or silently replace (fluentbit.md §3.4, source-verified
limits of FB ``plugins/out_s3/s3.c`` and ``plugins/out_cloudwatch_logs``)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from qtap_fluent.fluentbit.config import options
from qtap_fluent.fluentbit.config.checks.base import FluentBitView, at_entry, at_section
from qtap_fluent.fluentbit.config.model import OUTPUT, ConfigFile, Section
from qtap_fluent.problems import Level, Problem
from qtap_fluent.validate.registry import register

# s3.c limits (decimal, as the plugin writes them).
MIN_TOTAL_FILE_SIZE = 1_000_000
MAX_TOTAL_FILE_SIZE = 50_000_000_000
MAX_PUT_OBJECT_SIZE = 1_000_000_000  # error text still says "50M"; 1e9 since v2.0
MIN_CHUNK = 5_242_880  # S3's 5 MiB multipart part minimum; also the default upload_chunk_size
MAX_CHUNK = 50_000_000
MAX_CHUNK_COMPRESSED = 5_000_000_000
AUTO_PUT_OBJECT_BELOW = 2 * MIN_CHUNK  # total_file_size below this switches to PutObject
DEFAULT_KEY_FORMAT = "/fluent-bit-logs/$TAG/%Y/%m/%d/%H/%M/%S"

S3_COMPRESSION = ("gzip", "zstd", "snappy", "none", "arrow", "parquet")
S3_FORMATS = ("json_lines", "json", "otlp_json", "parquet", "arrow")
STDOUT_FORMATS = ("msgpack", "json", "json_lines", "json_stream", "otlp_json",
                  "otlp_json_pretty")
JSON_DATE_FORMATS = ("double", "iso8601", "java_sql_timestamp", "epoch", "epoch_ms",
                     "epoch_millis", "epoch_milliseconds")
RETENTION_DAYS = (0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653)

#: strftime conversions that put the second into the key.
_SECONDS = ("%S", "%s", "%T", "%X", "%c", "%r")
_TOKEN = re.compile(r"\$(\w+)(\[(\d+)\])?")


def _outputs(view: FluentBitView, plugin: str) -> Iterator[tuple[ConfigFile, Section]]:
    for config in view.fluentbit:
        for s in config.of(OUTPUT):
            if s.plugin == plugin:
                yield config, s


def _flag(s: Section, key: str) -> bool:
    return bool(options.parse_bool(s.get(key) or "false"))


@register("fb-s3-bucket", Level.ERROR, "fluentbit", "s3 output without bucket")
def s3_bucket(view: FluentBitView) -> Iterator[Problem]:
    for config, s in _outputs(view, "s3"):
        e = s.entry("bucket")
        if e is None or (not e.value and not e.unresolved):
            yield at_section(s, config, Level.ERROR, "fb-s3-bucket",
                             "s3 output without bucket: Fluent Bit refuses to start "
                             "('bucket' is a required parameter)")


@register("fb-s3-size", Level.ERROR, "fluentbit",
          "s3 total_file_size / upload_chunk_size outside the plugin's limits")
def s3_size(view: FluentBitView) -> Iterator[Problem]:
    rule = "fb-s3-size"
    for config, s in _outputs(view, "s3"):
        tfs_e, ucs_e = s.entry("total_file_size"), s.entry("upload_chunk_size")
        tfs = options.parse_size(tfs_e.value) if tfs_e and not tfs_e.unresolved else 100_000_000
        ucs = options.parse_size(ucs_e.value) if ucs_e and not ucs_e.unresolved else MIN_CHUNK
        if tfs is None or ucs is None:
            continue  # fb-size reports it
        put_object = _flag(s, "use_put_object")
        compressed = (s.get("compression") or "none").lower() != "none"
        if tfs_e is not None:
            if tfs < MIN_TOTAL_FILE_SIZE:
                yield at_entry(tfs_e, config, Level.ERROR, rule,
                               f"total_file_size {tfs} is below the 1,000,000-byte minimum",
                               value=True)
            elif tfs > MAX_TOTAL_FILE_SIZE:
                yield at_entry(tfs_e, config, Level.ERROR, rule,
                               f"total_file_size {tfs} is above the 50,000,000,000-byte maximum",
                               value=True)
            elif put_object and tfs > MAX_PUT_OBJECT_SIZE:
                yield at_entry(tfs_e, config, Level.ERROR, rule,
                               f"with use_put_object on, total_file_size {tfs} may not exceed "
                               "1,000,000,000 bytes", value=True)
        if ucs_e is None:
            continue
        if ucs != MIN_CHUNK and 2 * ucs > tfs:
            yield at_entry(ucs_e, config, Level.ERROR, rule,
                           f"total_file_size ({tfs}) is less than 2x upload_chunk_size ({ucs})",
                           value=True)
        multipart = not put_object and tfs >= AUTO_PUT_OBJECT_BELOW
        limit = MAX_CHUNK_COMPRESSED if compressed else MAX_CHUNK
        if multipart and ucs < MIN_CHUNK:
            yield at_entry(ucs_e, config, Level.ERROR, rule,
                           f"upload_chunk_size {ucs} is below S3's 5,242,880-byte part minimum",
                           value=True)
        elif multipart and ucs > limit:
            yield at_entry(ucs_e, config, Level.ERROR, rule,
                           f"upload_chunk_size {ucs} is above the {limit:,}-byte maximum"
                           + (" (compressed)" if compressed else ""), value=True)


@register("fb-s3-key-format", Level.ERROR, "fluentbit",
          "s3_key_format not starting with '/', or with a $ token s3 does not expand")
def s3_key_format(view: FluentBitView) -> Iterator[Problem]:
    rule = "fb-s3-key-format"
    for config, s in _outputs(view, "s3"):
        e = s.entry("s3_key_format")
        if e is None or e.unresolved:
            continue
        if not e.value.startswith("/"):
            yield at_entry(e, config, Level.ERROR, rule,
                           f"s3_key_format must start with '/': '{e.value}'", value=True)
        for m in _TOKEN.finditer(e.value):
            name, index = m.group(1), m.group(3)
            if name not in ("TAG", "INDEX", "UUID"):
                yield at_entry(e, config, Level.ERROR, rule,
                               f"s3_key_format token ${name} is not expanded (known: $TAG, "
                               "$TAG[0..9], $INDEX, $UUID); it stays in the key literally",
                               value=True)
            elif index is not None and (name != "TAG" or int(index) > 9):
                yield at_entry(e, config, Level.ERROR, rule,
                               f"{m.group(0)}: only $TAG[0] to $TAG[9] are expanded",
                               value=True)


@register("fb-s3-overwrite", Level.WARNING, "fluentbit",
          "s3_key_format without $UUID/$INDEX/seconds: uploads can share a key and overwrite")
def s3_overwrite(view: FluentBitView) -> Iterator[Problem]:
    for config, s in _outputs(view, "s3"):
        e = s.entry("s3_key_format")
        if e is not None and e.unresolved:
            continue
        fmt = e.value if e is not None else DEFAULT_KEY_FORMAT
        if "$UUID" in fmt or "$INDEX" in fmt:
            continue
        if any(t in fmt for t in _SECONDS):
            continue  # per-second keys (the default): collisions need two uploads in 1 s
        tfs_e = s.entry("total_file_size")
        tfs = options.parse_size(tfs_e.value) if tfs_e else 100_000_000
        put_object = _flag(s, "use_put_object") or (tfs is not None
                                                     and tfs < AUTO_PUT_OBJECT_BELOW)
        if put_object and not _flag(s, "static_file_path"):
            continue  # PutObject appends "-object" + 8 random chars to such keys (s3.c)
        why = ("static_file_path on disables the random suffix" if put_object else
               "multipart uploads use the key as formatted")
        msg = (f"s3_key_format '{fmt}' has neither $UUID nor $INDEX nor seconds, and {why}: "
               "two uploads whose first records fall in the same time slot of the key (same "
               "tag) get the same object key and the later one overwrites the earlier; add "
               "$UUID")
        if e is not None:
            yield at_entry(e, config, Level.WARNING, "fb-s3-overwrite", msg, value=True)
        else:
            yield at_section(s, config, Level.WARNING, "fb-s3-overwrite",
                             msg + " (this is the default s3_key_format)")


@register("fb-s3-enum", Level.ERROR, "fluentbit",
          "s3 compression/format value the plugin does not support")
def s3_enum(view: FluentBitView) -> Iterator[Problem]:
    for config, s in _outputs(view, "s3"):
        comp = s.entry("compression")
        if comp is not None and not comp.unresolved \
                and comp.value.lower() not in S3_COMPRESSION:
            yield at_entry(comp, config, Level.ERROR, "fb-s3-enum",
                           f"unknown compression '{comp.value}' (gzip, zstd, snappy or none)",
                           value=True)
        fmt = s.entry("format")
        if fmt is not None and not fmt.unresolved:
            value = fmt.value.lower()
            if value not in S3_FORMATS:
                yield at_entry(fmt, config, Level.ERROR, "fb-s3-enum",
                               f"unsupported s3 format '{fmt.value}' (json_lines, otlp_json, "
                               "parquet or arrow); Fluent Bit refuses to start", value=True)
            elif value in ("parquet", "arrow", "otlp_json") and s.entry("log_key"):
                yield at_entry(fmt, config, Level.ERROR, "fb-s3-enum",
                               f"log_key cannot be used with format {fmt.value}", value=True)


def _cloudwatch(view: FluentBitView) -> Iterator[tuple[ConfigFile, Section]]:
    return _outputs(view, "cloudwatch_logs")


@register("fb-cloudwatch-required", Level.ERROR, "fluentbit",
          "cloudwatch_logs without region or log_group_name")
def cloudwatch_required(view: FluentBitView) -> Iterator[Problem]:
    for config, s in _cloudwatch(view):
        for key in ("region", "log_group_name"):
            if not s.get(key):
                yield at_section(s, config, Level.ERROR, "fb-cloudwatch-required",
                                 f"cloudwatch_logs output without {key} (required)")


@register("fb-cloudwatch-stream", Level.ERROR, "fluentbit",
          "cloudwatch_logs needs exactly one of log_stream_name and log_stream_prefix")
def cloudwatch_stream(view: FluentBitView) -> Iterator[Problem]:
    for config, s in _cloudwatch(view):
        name, prefix = s.entry("log_stream_name"), s.entry("log_stream_prefix")
        if name is not None and prefix is not None:
            yield at_entry(prefix, config, Level.ERROR, "fb-cloudwatch-stream",
                           "set either log_stream_name or log_stream_prefix, not both")
        elif name is None and prefix is None:
            yield at_section(s, config, Level.ERROR, "fb-cloudwatch-stream",
                             "cloudwatch_logs output needs log_stream_name or "
                             "log_stream_prefix")


@register("fb-cloudwatch-retention", Level.ERROR, "fluentbit",
          "log_retention_days not one of the values CloudWatch Logs accepts")
def cloudwatch_retention(view: FluentBitView) -> Iterator[Problem]:
    for config, s in _cloudwatch(view):
        e = s.entry("log_retention_days")
        if e is None or e.unresolved:
            continue
        days = options.parse_int(e.value)
        if days not in RETENTION_DAYS:
            allowed = ", ".join(str(d) for d in RETENTION_DAYS[1:])
            yield at_entry(e, config, Level.ERROR, "fb-cloudwatch-retention",
                           f"log_retention_days '{e.value}' is not one of {allowed}",
                           value=True)


@register("fb-stdout-format", Level.ERROR, "fluentbit",
          "stdout Format / json_date_format value the plugin does not know (it falls back)")
def stdout_format(view: FluentBitView) -> Iterator[Problem]:
    for config, s in _outputs(view, "stdout"):
        fmt = s.entry("format")
        if fmt is not None and not fmt.unresolved and fmt.value.lower() not in STDOUT_FORMATS:
            yield at_entry(fmt, config, Level.ERROR, "fb-stdout-format",
                           f"unknown stdout Format '{fmt.value}' (Fluent Bit falls back to "
                           f"msgpack); use one of {', '.join(STDOUT_FORMATS)}", value=True)
        date = s.entry("json_date_format")
        if date is not None and not date.unresolved \
                and date.value.lower() not in JSON_DATE_FORMATS:
            yield at_entry(date, config, Level.ERROR, "fb-stdout-format",
                           f"unknown json_date_format '{date.value}' (Fluent Bit falls back to "
                           f"double); use one of {', '.join(JSON_DATE_FORMATS)}", value=True)
