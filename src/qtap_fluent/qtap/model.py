"""The Qtap configuration as typed, frozen dataclasses (qtap.md §1).

Field names are the YAML keys. Every node remembers where it was written: ``span`` is the
1-based (line, col) of its mapping, ``spans[key]`` that of each value. Schema facts (required,
allowed values, secrets) live in each field's metadata (``schema.spec``); ``config`` reads them.

Nodes compare and hash by identity (``eq=False``): generating ``__eq__``/``__hash__`` for ~30
classes doubled this module's import time, which ``gen`` pays on every run, and nothing
compares two configs structurally.
"""

# ruff: noqa: RUF009  -- ``spec()`` returns a ``dataclasses.field()`` carrying schema metadata

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qtap_fluent.qtap import schema as S
from qtap_fluent.qtap.schema import spec


@dataclass(frozen=True, slots=True)
class Span:
    """1-based line and column in the YAML file."""

    line: int = 1
    col: int = 1


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Node:
    span: Span = field(default=Span(), compare=False)
    spans: Mapping[str, Span] = field(default_factory=dict, compare=False, hash=False,
                                      repr=False)

    def span_of(self, key: str) -> Span:
        """Where the value of ``key`` was written (the node's own span if it was not)."""
        return self.spans.get(key, self.span)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ValueSource(Node):
    """``{type: env|text, value: …}``: a secret read from the environment or given in clear."""

    type: str = spec("", required=True, choices=S.VALUE_SOURCE_TYPES)
    value: str = spec("", required=True)

    @property
    def env_name(self) -> str | None:
        """The variable an ``env`` source reads (what a generated file may name), else None."""
        return self.value if self.type == "env" and self.value else None

    def resolve(self, environ: Mapping[str, str]) -> str:
        """Qtap's reading: env → the variable (or ""), text → the value, anything else → ""."""
        if self.type == "env":
            return environ.get(self.value, "")
        if self.type == "text":
            return self.value
        return ""


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class TLSConfig(Node):
    enabled: bool | None = spec(None)  # README default: true
    insecure_skip_verify: bool = spec(False)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class StoreRef(Node):
    """``{id, disabled}``: picks a store by id."""

    id: str = spec("")
    disabled: bool = spec(False)


# --- services -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class EventStore(Node):
    """``stdout`` and ``disabled`` event stores, and the base of the others."""

    type: str = spec("stdout", required=True, choices=S.EVENT_STORE_TYPES,
                     fallback="Qtap uses the stdout store instead")
    id: str | None = spec(None)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class AxiomEventStore(EventStore):
    token: ValueSource | None = spec(None, secret=True)
    dataset: ValueSource | None = spec(None)  # README: defaults to qtap-events


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class OtelEventStore(EventStore):
    endpoint: str = spec("")
    protocol: str = spec("grpc", choices=S.OTEL_PROTOCOLS)
    headers: Mapping[str, ValueSource] = spec(secret=True, factory=dict)
    service_name: str = spec("qtap")
    environment: str = spec("production")
    tls: TLSConfig | None = spec(None)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class PulseEventStore(EventStore):
    token: ValueSource | None = spec(None, secret=True)
    url: str = spec("")
    allow_insecure: bool = spec(False)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ObjectStore(Node):
    """``stdout`` and ``disabled`` object stores, and the base of the others."""

    type: str = spec("stdout", required=True, choices=S.OBJECT_STORE_TYPES,
                     fallback="Qtap uses the stdout store instead")
    id: str | None = spec(None)
    event_store: StoreRef | None = spec(None)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class S3ObjectStore(ObjectStore):
    """S3 or any S3-compatible store (MinIO). The object key is the SHA-1 of the artifact."""

    endpoint: str = spec(S.S3_DEFAULT_ENDPOINT)
    bucket: str = spec("", required=True)
    region: str = spec(S.S3_DEFAULT_REGION)
    access_key: ValueSource | None = spec(None, secret=True)
    secret_key: ValueSource | None = spec(None, secret=True)
    access_url: str = spec("")
    insecure: bool = spec(False)  # http instead of https

    @property
    def endpoint_url(self) -> str:
        """``endpoint`` as a URL: Qtap's minio client takes a bare host[:port] and picks the
        scheme from ``insecure``; an endpoint written with a scheme is kept as written."""
        if "://" in self.endpoint:
            return self.endpoint
        return f"{'http' if self.insecure else 'https'}://{self.endpoint}"

    @property
    def is_aws(self) -> bool:
        """True for AWS S3 itself (the default endpoint), False for MinIO and other S3s."""
        host = self.endpoint.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
        return host == "s3.amazonaws.com" or (host.startswith("s3.") and
                                              host.endswith(".amazonaws.com"))


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class OtelObjectStore(ObjectStore):
    otel_endpoint: str = spec("")
    protocol: str = spec("grpc", choices=S.OTEL_PROTOCOLS)
    headers: Mapping[str, ValueSource] = spec(secret=True, factory=dict)
    service_name: str = spec("qtap")
    environment: str = spec("production")
    tls: TLSConfig | None = spec(None)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class QpointObjectStore(ObjectStore):
    url: str = spec("")
    token: ValueSource | None = spec(None, secret=True)


EVENT_STORE_CLASSES: dict[str, type[EventStore]] = {
    "axiom": AxiomEventStore, "otel": OtelEventStore, "pulse": PulseEventStore,
    "pulse-streaming": PulseEventStore, "pulse-legacy": PulseEventStore,
}
OBJECT_STORE_CLASSES: dict[str, type[ObjectStore]] = {
    "s3": S3ObjectStore, "otel": OtelObjectStore, "qpoint": QpointObjectStore,
}


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Qscan(Node):
    type: str = spec("disabled", choices=S.QSCAN_TYPES)
    url: str = spec("")
    token: ValueSource | None = spec(None, secret=True)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Services(Node):
    """The first entry of each list is the default store; an empty list means disabled."""

    event_stores: tuple[EventStore, ...] = spec(())
    object_stores: tuple[ObjectStore, ...] = spec(())
    qscan: Qscan | None = spec(None)


# --- stacks and plugins -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class CaptureRule(Node):
    """Rules run in order; the first that passes sets level and format."""

    name: str = spec("")
    expr: str = spec("", required=True)
    level: str = spec("none", choices=S.CAPTURE_LEVELS)  # no legacy alias inside rules
    format: str | None = spec(None, choices=S.CAPTURE_FORMATS)  # None: the plugin's format


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class HttpCaptureConfig(Node):
    level: str = spec("none", choices=S.CAPTURE_LEVELS, aliases=S.CAPTURE_LEVEL_ALIASES,
                      alias_rule="qtap-legacy-level")
    format: str = spec("json", choices=S.CAPTURE_FORMATS)
    object_store: StoreRef | None = spec(None)
    rules: tuple[CaptureRule, ...] = spec(())


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class AccessLogRule(Node):
    name: str = spec("")
    expr: str = spec("", required=True)
    mode: str = spec("summary", choices=S.ACCESS_LOG_MODES, aliases=S.ACCESS_LOG_MODE_ALIASES)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class AccessLogConfig(Node):
    """``access_logs`` and ``debug``: written straight to stdout, bypassing the stores."""

    mode: str | None = spec(None, choices=S.ACCESS_LOG_MODES, aliases=S.ACCESS_LOG_MODE_ALIASES)
    format: str | None = spec(None, choices=S.ACCESS_LOG_FORMATS)  # json / console (debug)
    rules: tuple[AccessLogRule, ...] = spec(())


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ReportUsageConfig(Node):
    tags: tuple[str, ...] = spec(())
    headers: tuple[str, ...] = spec(())


PluginConfig = HttpCaptureConfig | AccessLogConfig | ReportUsageConfig | Mapping[str, Any]

#: Plugin types with a typed config; ``None``: the plugin takes no config.
PLUGIN_CONFIG_CLASSES: dict[str, type[Node] | None] = {
    "http_capture": HttpCaptureConfig, "access_logs": AccessLogConfig,
    "debug": AccessLogConfig, "report_usage": ReportUsageConfig, "http_metrics": None,
}


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Plugin(Node):
    type: str = spec("", required=True)
    config: PluginConfig | None = spec(None)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Stack(Node):
    name: str = ""
    plugins: tuple[Plugin, ...] = spec(())

    @property
    def http_capture(self) -> HttpCaptureConfig | None:
        """The first http_capture plugin's config (its defaults if it has none)."""
        for plugin in self.plugins:
            if plugin.type == "http_capture":
                cfg = plugin.config
                return cfg if isinstance(cfg, HttpCaptureConfig) else HttpCaptureConfig()
        return None


# --- tap ----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ProtocolStack(Node):
    stack: str = spec("")

    @property
    def has_stack(self) -> bool:
        return self.stack not in S.NO_STACK


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class TapEndpoint(Node):
    """A per-domain stack override."""

    domain: str = spec("", required=True)
    http: ProtocolStack = spec(factory=ProtocolStack)
    redis: ProtocolStack = spec(factory=ProtocolStack)
    mysql: ProtocolStack = spec(factory=ProtocolStack)
    kafka: ProtocolStack = spec(factory=ProtocolStack)
    postgres: ProtocolStack = spec(factory=ProtocolStack)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class CustomFilter(Node):
    """Excludes processes whose exe matches; ``only`` limits which layers are skipped."""

    exe: str = spec("", required=True)
    strategy: str = spec("", choices=S.STRATEGIES)  # "" means suffix
    only: tuple[str, ...] = spec((), choices=tuple(S.ONLY_FLAGS))

    @property
    def skip_flags(self) -> int:
        """The BPF skip bitmask: every layer when ``only`` is empty."""
        if not self.only:
            return S.SKIP_ALL
        flags = 0
        for layer in self.only:
            flags |= S.ONLY_FLAGS.get(layer, 0)
        return flags


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Filters(Node):
    groups: tuple[str, ...] = spec(())
    custom: tuple[CustomFilter, ...] = spec(())

    def skip_flags(self, exe: str, *, pid: int | None = None,
                   own_pid: int | None = None) -> int:
        """Which layers to skip for a process: 0 means capture it. First match wins."""
        from qtap_fluent.qtap.filters import matcher_for
        return matcher_for(self).skip_flags(exe, pid=pid, own_pid=own_pid)

    def excludes(self, exe: str, *, pid: int | None = None, own_pid: int | None = None,
                 layer: str | None = None) -> bool:
        """True when the process is filtered out (for ``layer`` only, if given)."""
        flags = self.skip_flags(exe, pid=pid, own_pid=own_pid)
        if layer is None:
            return flags == S.SKIP_ALL
        return bool(flags & S.ONLY_FLAGS[layer])


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Tap(Node):
    direction: str = spec("", choices=S.DIRECTIONS, fallback="Qtap treats it as 'all'")
    ignore_loopback: bool = spec(False)
    audit_include_dns: bool = spec(False)
    http: ProtocolStack = spec(factory=ProtocolStack)
    redis: ProtocolStack = spec(factory=ProtocolStack)
    mysql: ProtocolStack = spec(factory=ProtocolStack)
    kafka: ProtocolStack = spec(factory=ProtocolStack)
    postgres: ProtocolStack = spec(factory=ProtocolStack)
    filters: Filters = spec(factory=Filters)
    endpoints: tuple[TapEndpoint, ...] = spec(())

    @property
    def effective_direction(self) -> str:
        """Empty or unknown means ``all``."""
        return self.direction if self.direction in S.DIRECTIONS else "all"


# --- tags, control, rulekit ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Tag(Node):
    key: str = spec("", required=True)
    source: str = spec("", required=True, choices=S.TAG_SOURCES)
    location: str = spec("", required=True)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ControlRule(Node):
    name: str = spec("", required=True)
    expr: str = spec("", required=True)
    actions: tuple[str, ...] = spec((), choices=S.CONTROL_ACTIONS, lower=True)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Control(Node):
    default: str = spec("allow", choices=S.CONTROL_DEFAULTS)
    rules: tuple[ControlRule, ...] = spec(())


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Macro(Node):
    name: str = spec("", required=True)
    expr: str = spec("", required=True)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Rulekit(Node):
    macros: tuple[Macro, ...] = spec(())


# --- the whole file ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class QtapConfig(Node):
    """One Qtap YAML file. ``version`` is accepted (docs write ``version: 2``) but Qtap's
    ``Config`` struct has no such field, so nothing depends on it."""

    path: str = ""
    version: Any = spec(None)  # never validated: Qtap ignores it
    services: Services = spec(factory=Services)
    stacks: Mapping[str, Stack] = spec(factory=dict)
    tap: Tap | None = spec(None)
    tags: tuple[Tag, ...] = spec(())
    control: Control | None = spec(None)
    rulekit: Rulekit | None = spec(None)

    def stack(self, name: str) -> Stack | None:
        """The stack called ``name``; None for "", "none" or an undefined name."""
        if name in S.NO_STACK:
            return None
        return self.stacks.get(name)

    def endpoint(self, domain: str | None) -> TapEndpoint | None:
        """The ``tap.endpoints`` entry for ``domain`` (case-insensitive), if any."""
        if self.tap is None or not domain:
            return None
        wanted = domain.lower().rstrip(".")
        for ep in self.tap.endpoints:
            if ep.domain.lower() == wanted:
                return ep
        return None

    def http_stack_for(self, domain: str | None = None) -> Stack | None:
        """The stack that handles HTTP to ``domain``: the endpoint override, else tap.http."""
        ep = self.endpoint(domain)
        if ep is not None:
            return self.stack(ep.http.stack)
        return self.stack(self.tap.http.stack) if self.tap is not None else None

    def http_capture_for(self, domain: str | None = None) -> HttpCaptureConfig | None:
        """The http_capture config in effect for ``domain`` (None: nothing is captured)."""
        stack = self.http_stack_for(domain)
        return stack.http_capture if stack is not None else None

    @property
    def default_object_store(self) -> ObjectStore | None:
        return self.services.object_stores[0] if self.services.object_stores else None

    @property
    def default_event_store(self) -> EventStore | None:
        return self.services.event_stores[0] if self.services.event_stores else None

    def s3_object_store(self) -> S3ObjectStore | None:
        """The object store ``gen`` takes bucket/endpoint/region/credentials from: the
        default store if it is s3, else the first s3 store."""
        for store in self.services.object_stores:
            if isinstance(store, S3ObjectStore):
                return store
        return None

    @property
    def macros(self) -> dict[str, str]:
        """``rulekit.macros`` as name → expression (first definition wins on duplicates)."""
        out: dict[str, str] = {}
        for macro in self.rulekit.macros if self.rulekit is not None else ():
            out.setdefault(macro.name, macro.expr)
        return out

    @property
    def filters(self) -> Filters:
        return self.tap.filters if self.tap is not None else Filters()
