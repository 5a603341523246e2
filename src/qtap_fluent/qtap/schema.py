"""Field tables of the Qtap YAML schema (qtap.md §1): allowed values, defaults, known names.

Facts only; the dataclasses in ``model`` refer to these and the loader in ``config`` enforces
them. Where upstream versions differ the table takes the union.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

#: http_capture ``level`` (pkg/plugins/httpcapture). ``details`` is the legacy alias of headers.
CAPTURE_LEVELS = ("none", "summary", "headers", "full")
CAPTURE_LEVEL_ALIASES = {"details": "headers"}
CAPTURE_FORMATS = ("json", "text")

#: access_logs / debug ``mode`` and ``format``; the newest version maps ``headers`` to details.
ACCESS_LOG_MODES = ("none", "summary", "details", "full")
ACCESS_LOG_MODE_ALIASES = {"headers": "details"}
ACCESS_LOG_FORMATS = ("json", "console")

#: tap.direction; empty or unknown means ``all`` in the BPF socket settings.
DIRECTIONS = ("all", "ingress", "egress", "egress-internal", "egress-external")

#: tap.filters.custom[].strategy (pkg/config/filters.go); empty means suffix.
STRATEGIES = ("exact", "prefix", "suffix", "contains", "regex")
#: tap.filters.custom[].only, as BPF skip flags (data=1, dns=2, tls=4, http=8).
ONLY_FLAGS = {"data": 1, "dns": 2, "tls": 4, "http": 8}
SKIP_ALL = 1 | 2 | 4 | 8

#: Predefined filter groups (pkg/process/filter_groups.go): exact exe paths, all layers
#: skipped. ``qpoint`` is qtap's own PID, matched by the caller's PID instead.
FILTER_GROUPS: dict[str, tuple[str, ...]] = {
    "container-runtimes": ("/usr/bin/containerd", "/usr/bin/dockerd", "/usr/bin/runc"),
    "eks": ("/app/aws-k8s-agent", "/usr/bin/amazon-ssm-agent", "/usr/bin/ssm-agent-worker",
            "/usr/bin/ssm-document-worker"),
    "gke": ("/home/kubernetes/bin/gcfsd", "/event-exporter", "/fluent-bit-gke-exporter",
            "/home/kubernetes/bin/node-problem-detector"),
    "kubernetes": ("/home/kubernetes/bin/kubelet", "/home/kubernetes/bin/kube-proxy",
                   "/proxy-agent", "/cluster-proportional-autoscaler",
                   "/csi-node-driver-registrar"),
    "qpoint": (),
}
#: The docs call the container group ``container``; the code key is container-runtimes.
FILTER_GROUP_HINTS = {"container": "container-runtimes"}

EVENT_STORE_TYPES = ("stdout", "disabled", "axiom", "otel", "pulse", "pulse-streaming",
                     "pulse-legacy")
OBJECT_STORE_TYPES = ("stdout", "disabled", "s3", "otel", "qpoint")
OTEL_PROTOCOLS = ("grpc", "http", "stdout")
QSCAN_TYPES = ("disabled", "stdout", "client")
VALUE_SOURCE_TYPES = ("env", "text")
TAG_SOURCES = ("env", "k8s.label", "k8s.annotation", "container.label")
CONTROL_DEFAULTS = ("allow",)
CONTROL_ACTIONS = ("allow", "deny")

#: Plugin types registered by the tap command, then the "Pro" ones; devtools with a flag.
PLUGIN_TYPES = ("logger", "report_usage", "access_logs", "debug", "http_capture",
                "http_metrics", "dlp", "detect_errors", "qscan", "llm", "devtools")

#: ``stack`` values that mean "no stack".
NO_STACK = ("", "none")

S3_DEFAULT_ENDPOINT = "s3.amazonaws.com"
S3_DEFAULT_REGION = "us-east-1"


def spec(default: Any = None, *, required: bool = False, choices: tuple[str, ...] = (),
         aliases: dict[str, str] | None = None, alias_rule: str | None = None,
         fallback: str = "", secret: bool = False, lower: bool = False,
         factory: Any = None) -> Any:
    """A dataclass field carrying its schema facts in ``metadata`` for the loader.

    ``required``: missing, null or "" is a problem. ``choices``: the allowed strings.
    ``aliases``: accepted spellings mapped to a choice (reported under ``alias_rule`` if set).
    ``fallback``: a value outside ``choices`` is only a warning, because Qtap carries on as
    this text says.
    ``secret``: a ValueSource holding a credential (``type: text`` is reported).
    ``lower``: the value is lower-cased before the check (Qtap normalises it so).
    """
    meta = {"required": required, "choices": choices, "aliases": aliases or {},
            "alias_rule": alias_rule, "fallback": fallback, "secret": secret, "lower": lower}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)
