"""What the user asked ``gen`` for, checked before anything is rendered.

``GenSpec`` is built from the command line and the Qtap YAML (an ``s3`` object store there supplies
bucket, region and endpoint). ``check()`` returns every problem at once; rendering never starts
on a spec that has errors, so a bad request never leaves a partial output folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Output kinds, in the order they are rendered when several are asked for.
OUTPUT_KINDS: tuple[str, ...] = ("stdout", "s3", "minio", "cloudwatch", "serve")

#: ``--output serve``: Fluent Bit forwards (acks on) to ``qtap-fluent serve`` on this port, where
#: Python filters and outputs run.
SERVE_PORT = 24225
SERVE_METRICS_PORT = 2021

#: CloudWatch Logs accepts only these retention periods (PutRetentionPolicy; Fluent Bit
#: ``log_retention_days`` passes the value through).
CLOUDWATCH_RETENTION_DAYS: tuple[int, ...] = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
)

DEFAULT_TAG = "docker.qtap"
DEFAULT_PORT = 24224
DEFAULT_RETENTION_DAYS = 90
DEFAULT_LOG_GROUP = "/qpoint/http-traffic"
DEFAULT_REGION = "us-east-1"
DEFAULT_MINIO_BUCKET = "qtap-http-traffic"
DEFAULT_S3_PREFIX = "qtap"

# S3 bucket names: 3-63 chars of lower-case letters, digits, dots and hyphens, starting and
# ending with a letter or digit (S3 "Bucket naming rules").
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_DOMAIN = re.compile(r"^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                     r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_LOG_GROUP = re.compile(r"^[.\-_/#A-Za-z0-9]{1,512}$")


@dataclass(slots=True, kw_only=True)
class GenSpec:
    """Everything that decides the generated files."""

    source_name: str = "default"  #: shown in the generated headers
    outputs: list[str] = field(default_factory=lambda: ["stdout"])
    bucket: str | None = None
    region: str | None = None
    endpoint: str | None = None
    s3_prefix: str = DEFAULT_S3_PREFIX
    log_group: str = DEFAULT_LOG_GROUP
    retention_days: int = DEFAULT_RETENTION_DAYS
    include_domains: list[str] = field(default_factory=list)
    exclude_urls: list[str] = field(default_factory=list)
    errors_only: bool = False
    tag: str = DEFAULT_TAG
    listen: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    http_port: int = 2020  #: Fluent Bit's health/metrics server, on loopback
    config_format: str = "yaml"  #: which of the two Fluent Bit configs compose runs
    #: "docker": records arrive as Docker's fluentd log driver sends a container line (JSON in
    #: ``log``, parsed by the parser filter); "structured": the transaction map itself.
    record_shape: str = "docker"
    #: who captures: Qpoint's ``qtap`` (the guide) or our ``qtap-fluent`` agent, which sends
    #: records over forward itself (acks on) instead of through Docker's log driver.
    agent: str = "qtap"
    lua: dict[str, dict[str, object]] = field(default_factory=dict)  #: enabled Lua filters

    def region_or_default(self) -> str:
        return self.region or DEFAULT_REGION

    def check(self) -> list[str]:
        """Every reason this spec cannot be rendered, as ``--option: message`` strings."""
        errors: list[str] = []
        for kind in self.outputs:
            if kind not in OUTPUT_KINDS:
                errors.append(f"--output: unknown output kind {kind!r} "
                              f"(choose from {', '.join(OUTPUT_KINDS)})")
        if len(set(self.outputs)) != len(self.outputs):
            errors.append("--output: the same output kind is given twice")
        if "s3" in self.outputs and not self.bucket:
            errors.append("--bucket: the s3 output needs a bucket (give --bucket NAME or an "
                          "s3 object store with a bucket in the Qtap YAML)")
        if self.bucket and not _BUCKET.match(self.bucket):
            errors.append(f"--bucket: {self.bucket!r} is not a valid S3 bucket name (3-63 "
                          "lower-case letters, digits, dots and hyphens)")
        if self.endpoint is not None and not re.match(r"^https?://[^\s/]+(:\d+)?/?$",
                                                       self.endpoint):
            errors.append(f"--endpoint: {self.endpoint!r} must look like http://host:port or "
                          "https://host")
        if self.region is not None and not re.match(r"^[a-z]{2}(-[a-z]+)+-\d+$", self.region):
            errors.append(f"--region: {self.region!r} is not an AWS region name "
                          "(like us-east-1)")
        if not _LOG_GROUP.match(self.log_group):
            errors.append(f"--log-group: {self.log_group!r} is not a valid CloudWatch log "
                          "group name")
        if self.retention_days < 1:
            errors.append(f"--retention-days: must be at least 1, not {self.retention_days}")
        elif ("cloudwatch" in self.outputs
              and self.retention_days not in CLOUDWATCH_RETENTION_DAYS):
            allowed = ", ".join(str(d) for d in CLOUDWATCH_RETENTION_DAYS)
            errors.append(f"--retention-days: CloudWatch Logs accepts only {allowed}; "
                          f"{self.retention_days} is not one of them")
        for domain in self.include_domains:
            if not _DOMAIN.match(domain):
                errors.append(f"--include-domain: {domain!r} is not a domain name")
        for pattern in self.exclude_urls:
            problem = regex_problem(pattern)
            if problem:
                errors.append(f"--exclude-url: {pattern!r} {problem}")
        if not re.match(r"^[A-Za-z0-9_.-]+$", self.tag):
            errors.append(f"--tag: {self.tag!r} may hold only letters, digits, '_', '.' and '-'")
        if "serve" in self.outputs and SERVE_PORT in (self.port, self.http_port):
            errors.append(f"--port/--http-port: {SERVE_PORT} is the port of the serve output")
        for flag, port in (("--port", self.port), ("--http-port", self.http_port)):
            if not 1 <= port <= 65535:
                errors.append(f"{flag}: {port} is not a TCP port (1-65535)")
        if self.port == self.http_port:
            errors.append(f"--http-port: {self.http_port} is also the forward port")
        if self.agent not in ("qtap", "qtap-fluent"):
            errors.append(f"--agent: {self.agent!r} is not qtap or qtap-fluent")
        if self.record_shape not in ("docker", "structured"):
            errors.append(f"--record-shape: {self.record_shape!r} is not docker or structured")
        if self.config_format not in ("yaml", "classic"):
            errors.append(f"--config-format: {self.config_format!r} is not yaml or classic")
        return errors


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is unusable as a Fluent Bit grep regex, or None.

    Fluent Bit uses Onigmo (Ruby syntax); the common subset with Python ``re`` is checked here
    so ``gen`` stays light, and ``validate`` compiles with Oniguruma itself.
    """
    if not pattern:
        return "is empty"
    if any(c in pattern for c in "\n\r"):
        return "contains a line break"
    if pattern != pattern.strip():
        return "has leading or trailing blanks, which Fluent Bit would strip"
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"does not compile: {exc}"
    return None
