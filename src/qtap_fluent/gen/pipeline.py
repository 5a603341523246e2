"""The Fluent Bit pipeline ``gen`` writes, as model sections (rendered to both formats later).

The shape is the guide's: forward input -> parser filter (lift the JSON in ``log``) -> grep
``source stdout`` -> optional filters -> one output per requested kind. Every key written here
is a Fluent Bit 5.1.1 property (a test checks them against the shipped property facts).
"""

from __future__ import annotations

import re

from qtap_fluent.fluentbit.config.model import FILTER, INPUT, OUTPUT, PARSER, SERVICE, Section
from qtap_fluent.gen.spec import GenSpec

PARSER_NAME = "generic_json_parser"

#: Record accessor of the URL inside the lifted record. ``request.url`` would name a top-level
#: key called "request.url" (record-accessor dots do not nest) and match nothing.
URL_KEY = "$request['url']"


def service_section(spec: GenSpec, parsers_file: str) -> Section:
    s = Section(kind=SERVICE, header="SERVICE")
    s.add("Flush", 5).add("Daemon", False).add("Log_Level", "info")
    s.add("Parsers_File", parsers_file)
    # Health and metrics on loopback only: /api/v1/health for probes, /api/v1/metrics.
    s.add("HTTP_Server", True).add("HTTP_Listen", "127.0.0.1").add("HTTP_Port", spec.http_port)
    s.add("Health_Check", True)
    return s


def input_section(spec: GenSpec) -> Section:
    s = Section(kind=INPUT, header="INPUT",
                comment="Input: records from the Docker fluentd log driver (forward protocol)")
    s.add("Name", "forward").add("Listen", spec.listen).add("Port", spec.port)
    return s


def domain_regex(domains: list[str]) -> str:
    """One regex matching URLs whose host is any of ``domains`` (``*.x`` means subdomains)."""
    alts = []
    for d in domains:
        if d.startswith("*."):
            alts.append(r"(?:[^/@:]+\.)" + re.escape(d[2:]))
        else:
            alts.append(re.escape(d))
    hosts = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
    return rf"^https?://{hosts}(?::[0-9]+)?(?:[/?#]|$)"


def any_regex(patterns: list[str]) -> str:
    if len(patterns) == 1:
        return patterns[0]
    return "|".join(f"(?:{p})" for p in patterns)


def filter_sections(spec: GenSpec, unwrap: list[Section], lua: list[Section]) -> list[Section]:
    """parser, grep source, ``unwrap`` (Lua), domain/URL greps, then the other ``lua`` filters."""
    out: list[Section] = []
    if spec.record_shape == "docker":
        p = Section(kind=FILTER, header="FILTER",
                    comment="Parse the JSON line Qtap wrote and lift its fields to the top level")
        p.add("Name", "parser").add("Match", spec.tag).add("Key_Name", "log")
        p.add("Parser", PARSER_NAME).add("Reserve_Data", True).add("Preserve_Key", False)
        out.append(p)
        if spec.agent == "qtap":  # our agent sends only transactions (source stdout)
            g = Section(kind=FILTER, header="FILTER", comment="Keep only what Qtap wrote to "
                        "stdout (transactions), not its stderr logs")
            g.add("Name", "grep").add("Match", spec.tag).add("Regex", "source stdout")
            out.append(g)
    out.extend(unwrap)
    if spec.include_domains:
        s = Section(kind=FILTER, header="FILTER",
                    comment="Keep only transactions with these hosts: "
                    + ", ".join(spec.include_domains))
        s.add("Name", "grep").add("Match", spec.tag)
        s.add("Regex", f"{URL_KEY} {domain_regex(spec.include_domains)}")
        out.append(s)
    if spec.exclude_urls:
        s = Section(kind=FILTER, header="FILTER",
                    comment="Drop transactions whose URL matches: " + ", ".join(spec.exclude_urls))
        s.add("Name", "grep").add("Match", spec.tag)
        s.add("Exclude", f"{URL_KEY} {any_regex(spec.exclude_urls)}")
        out.append(s)
    out.extend(lua)
    return out


def s3_key_format(spec: GenSpec) -> str:
    # $UUID keeps two objects of the same hour from overwriting each other.
    return f"/{spec.s3_prefix}/year=%Y/month=%m/day=%d/hour=%H/$UUID.gz"


def output_sections(spec: GenSpec) -> list[Section]:
    builders = {"stdout": _stdout, "s3": _s3, "minio": _minio, "cloudwatch": _cloudwatch,
                "serve": _serve}
    return [builders[kind](spec) for kind in spec.outputs]


def _stdout(spec: GenSpec) -> Section:
    s = Section(kind=OUTPUT, header="OUTPUT", comment="Output: one JSON line per transaction")
    s.add("Name", "stdout").add("Match", spec.tag).add("Format", "json_lines")
    return s


def _s3_common(s: Section, spec: GenSpec, bucket: str) -> None:
    s.add("Name", "s3").add("Match", spec.tag).add("bucket", bucket)
    s.add("region", spec.region_or_default())


def _s3(spec: GenSpec) -> Section:
    assert spec.bucket is not None
    s = Section(kind=OUTPUT, header="OUTPUT",
                comment="Output: gzip objects in S3, at most 50M or 10 minutes each; "
                "credentials from the environment or an IAM role")
    _s3_common(s, spec, spec.bucket)
    if spec.endpoint:
        s.add("endpoint", spec.endpoint)
    s.add("total_file_size", "50M").add("upload_timeout", "10m").add("compression", "gzip")
    s.add("s3_key_format", s3_key_format(spec)).add("store_dir", "/tmp/fluent-bit/s3")
    s.add("use_put_object", True)
    return s


def _minio(spec: GenSpec) -> Section:
    s = Section(kind=OUTPUT, header="OUTPUT",
                comment="Output: gzip objects in the local MinIO (S3 API, path-style)")
    from qtap_fluent.gen.spec import DEFAULT_MINIO_BUCKET

    _s3_common(s, spec, spec.bucket or DEFAULT_MINIO_BUCKET)
    # Fluent Bit runs with host networking, so MinIO is reached on its published loopback port.
    s.add("endpoint", "http://127.0.0.1:9000")
    s.add("total_file_size", "50M").add("upload_timeout", "10m").add("compression", "gzip")
    s.add("s3_key_format", s3_key_format(spec)).add("store_dir", "/tmp/fluent-bit/minio")
    s.add("use_put_object", True)
    return s


def _cloudwatch(spec: GenSpec) -> Section:
    s = Section(kind=OUTPUT, header="OUTPUT",
                comment=f"Output: CloudWatch Logs, kept {spec.retention_days} days")
    s.add("Name", "cloudwatch_logs").add("Match", spec.tag)
    s.add("region", spec.region_or_default()).add("log_group_name", spec.log_group)
    s.add("log_stream_prefix", "qtap-").add("auto_create_group", True)
    s.add("log_retention_days", spec.retention_days)
    return s


def _serve(spec: GenSpec) -> Section:
    from qtap_fluent.gen.spec import SERVE_PORT

    s = Section(kind=OUTPUT, header="OUTPUT",
                comment="Output: `qtap-fluent serve` (Python filters and outputs); it acks a "
                "chunk only once its outputs hold it, so nothing is lost while it restarts")
    s.add("Name", "forward").add("Match", spec.tag).add("Host", "127.0.0.1")
    s.add("Port", SERVE_PORT).add("Require_ack_response", True).add("Retry_Limit", "no_limits")
    return s


def parser_sections() -> list[Section]:
    p = Section(kind=PARSER, header="PARSER",
                comment="Qtap writes one JSON document per line")
    p.add("Name", PARSER_NAME).add("Format", "json")
    return [p]
