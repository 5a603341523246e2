"""Cross-file rules: what the compose file, the Fluent Bit config and the Qtap config assume of
each other. Each one alone can be valid while the deployment ships nothing.

The path of records in the reference deployment (guide "Docker Deployment"): Qtap writes
transactions to stdout (its ``stdout`` stores) → Docker's ``fluentd`` log driver sends each line
with the service's ``tag`` to ``fluentd-address`` → Fluent Bit's ``forward`` input → filters and
outputs whose ``Match`` selects that tag. The Docker daemon, not the container, opens the
connection to ``fluentd-address``, so the address is seen from the host.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from qtap_fluent.fluentbit.config.checks.routing import matches
from qtap_fluent.fluentbit.config.model import FILTER, INPUT, OUTPUT, ConfigFile, Section, Span
from qtap_fluent.problems import Level, Problem
from qtap_fluent.validate import compose, links
from qtap_fluent.validate.compose import Service
from qtap_fluent.validate.registry import register
from qtap_fluent.yamlpos import Mark, YList, YMap

if TYPE_CHECKING:
    from qtap_fluent.validate.deployment import Deployment, QtapDoc

#: in_forward's default port (fluentbit.md §1.10).
FORWARD_DEFAULT_PORT = 24224
#: Qtap store types that print to stdout or do nothing (qtap.md §1.2).
QTAP_STDOUT_STORES = {"stdout"}


def _at(service: Service, mark: Mark, rule: str, level: Level, message: str) -> Problem:
    return Problem(path=service.path, line=mark[0], col=mark[1], level=level, rule=rule,
                   message=message)


def _where(span: Span | None, fallback: str) -> str:
    return f"{span.path}:{span.line}" if span is not None else fallback


def _fluentbit_services(deployment: Deployment, doc_path: str) -> list[Service]:
    return links.fluentbit_services(deployment, doc_path)


def _pipeline(deployment: Deployment, service: Service) -> list[ConfigFile]:
    return links.pipeline(deployment, service.path)


def _forward_inputs(configs: Sequence[ConfigFile]) -> list[tuple[ConfigFile, Section]]:
    return [(c, s) for c in configs for s in c.of(INPUT) if s.plugin == "forward"]


def _port(section: Section) -> int | None:
    value = (section.get("port") or str(FORWARD_DEFAULT_PORT)).strip()
    return int(value) if value.isdigit() else None


def _published(fb_services: Sequence[Service], container_port: int) -> set[int]:
    """Host ports that docker publishes to ``container_port`` of the fluent-bit services."""
    out: set[int] = set()
    for s in fb_services:
        ports = s.data.get("ports")
        if not isinstance(ports, YList):
            continue
        for item in ports:
            if isinstance(item, YMap):
                target, published = item.get("target"), item.get("published")
            else:
                parts = str(item).split("/")[0].split(":")
                target, published = parts[-1], (parts[-2] if len(parts) >= 2 else parts[-1])
            if str(target) == str(container_port) and str(published).isdigit():
                out.add(int(str(published)))
    return out


@register("cross-forward-port", Level.ERROR, "cross",
          "compose fluentd-address port is not the port a Fluent Bit forward input listens on")
def check_forward_port(deployment: Deployment) -> Iterator[Problem]:
    for service in compose.all_services(deployment.compose):
        if service.log_driver != "fluentd":
            continue
        scheme, _host, port, mark = compose.fluentd_address(service)
        if scheme != "tcp":
            continue
        if port is None or not 0 < port < 65536:
            yield _at(service, mark, "cross-forward-port", Level.ERROR,
                      f"service '{service.name}': fluentd-address has no valid port")
            continue
        configs = _pipeline(deployment, service)
        if not configs:
            continue  # no Fluent Bit config in the deployment: nothing to compare with
        inputs = _forward_inputs(configs)
        if not inputs:
            yield _at(service, mark, "cross-forward-port", Level.ERROR,
                      f"service '{service.name}' logs to fluentd-address port {port}, but no "
                      f"Fluent Bit config ({', '.join(c.path for c in configs)}) has a forward "
                      "input")
            continue
        fb = _fluentbit_services(deployment, service.path)
        listening: dict[int, Section] = {}
        for _cfg, section in inputs:
            p = _port(section)
            if p is None:
                break  # ${VAR} or garbage: fb-port reports it, we cannot compare
            listening[p] = section
            for host_port in _published(fb, p):
                listening[host_port] = section
        else:
            if port not in listening:
                first = inputs[0][1]
                yield _at(service, mark, "cross-forward-port", Level.ERROR,
                          f"service '{service.name}' sends its logs to port {port}, but the "
                          f"forward input ({_where(first.span, inputs[0][0].path)}) listens on "
                          f"{', '.join(str(p) for p in sorted(listening))}")


def _is_loopback_host(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


@register("cross-fluentd-unreachable", Level.WARNING, "cross",
          "fluentd-address the Docker daemon cannot reach: a compose service name, or loopback "
          "while fluent-bit neither uses host networking nor publishes the port")
def check_fluentd_reachable(deployment: Deployment) -> Iterator[Problem]:
    # The fluentd log driver runs inside dockerd on the host: it resolves names with the
    # host's resolver (compose service names are known only to containers on the compose
    # network) and connects from the host's network namespace.
    for service in compose.all_services(deployment.compose):
        if service.log_driver != "fluentd":
            continue
        scheme, host, port, mark = compose.fluentd_address(service)
        if scheme != "tcp" or host is None or port is None:
            continue
        names = {s.name for s in compose.services(service.doc)}
        if host in names:
            yield _at(service, mark, "cross-fluentd-unreachable", Level.WARNING,
                      f"fluentd-address host '{host}' is a compose service name, but the "
                      "Docker daemon connects from the host, where that name does not resolve; "
                      "use 127.0.0.1 with host networking or a published port")
            continue
        fb = _fluentbit_services(deployment, service.path)
        if not _is_loopback_host(host) or not fb:
            continue
        if any(s.str_of("network_mode") == "host" for s in fb):
            continue
        if any(port in _host_ports(s) for s in fb):
            continue
        yield _at(service, mark, "cross-fluentd-unreachable", Level.WARNING,
                  f"fluentd-address {host}:{port} is reached from the host, but service "
                  f"'{fb[0].name}' neither uses network_mode: host nor publishes port {port}")


def _host_ports(service: Service) -> set[int]:
    """Host ports a service publishes (``ports:`` short and long syntax)."""
    out: set[int] = set()
    ports = service.data.get("ports")
    for item in ports if isinstance(ports, YList) else []:
        if isinstance(item, YMap):
            published = str(item.get("published", item.get("target", "")))
        else:
            parts = str(item).split("/")[0].split(":")
            published = parts[-2] if len(parts) >= 2 else parts[-1]
        if "-" in published:
            low, _, high = published.partition("-")
            if low.isdigit() and high.isdigit():
                out.update(range(int(low), int(high) + 1))
        elif published.isdigit():
            out.add(int(published))
    return out


def _effective_tags(tag: str, inputs: Sequence[tuple[ConfigFile, Section]]) -> list[str]:
    """The tag records carry after the forward input (``tag_prefix`` wins over ``tag``)."""
    out = []
    for _cfg, section in inputs:
        prefix, fixed = section.get("tag_prefix"), section.get("tag")
        out.append(prefix + tag if prefix else (fixed or tag))
    return out or [tag]


@register("cross-log-tag-unrouted", Level.ERROR, "cross",
          "records with the compose log driver tag match no Fluent Bit output")
def check_log_tag(deployment: Deployment) -> Iterator[Problem]:
    for service in compose.all_services(deployment.compose):
        if service.log_driver != "fluentd":
            continue
        tag, mark = compose.log_tag(service)
        configs = _pipeline(deployment, service)
        if tag is None or not configs:
            continue
        inputs = _forward_inputs(configs)
        for effective in _effective_tags(tag, inputs):
            filters = [s for c in configs for s in c.of(FILTER)]
            # Match semantics (globs, Match_Regex in Oniguruma, ${VAR}) are the Fluent Bit
            # checks' own, so both rule sets agree on what a pattern selects.
            if any(s.plugin == "rewrite_tag" and matches(s, (effective,)) for s in filters):
                continue  # records are re-emitted under new tags: cannot follow them here
            outputs = [s for c in configs for s in c.of(OUTPUT)]
            if any(matches(s, (effective,)) for s in outputs):
                continue
            patterns = sorted({s.get("match") or s.get("match_regex") or "(none)"
                               for s in outputs})
            yield _at(service, mark, "cross-log-tag-unrouted", Level.ERROR,
                      f"service '{service.name}' logs with tag '{effective}', which no output "
                      f"Match selects ({', '.join(patterns) or 'no outputs'}): its records "
                      "are dropped")


@register("cross-mount-missing", Level.ERROR, "cross",
          "a compose bind mount's source does not exist next to the compose file")
def check_mounts(deployment: Deployment) -> Iterator[Problem]:
    for service in compose.all_services(deployment.compose):
        for m in service.mounts:
            if os.path.isabs(m.written) or m.written.startswith("~") or "${" in m.written:
                continue  # absolute paths live on the target host; ${VAR} is compose's
            if not os.path.exists(m.source):
                yield _at(service, m.mark, "cross-mount-missing", Level.ERROR,
                          f"service '{service.name}' mounts {m.written}, which does not exist "
                          "(docker would create an empty directory in its place)")


@register("cross-config-not-mounted", Level.ERROR, "cross",
          "the config a fluent-bit (-c) or Qtap (--config) service reads, or a file the Fluent "
          "Bit config references, is not mounted into the container")
def check_config_mounted(deployment: Deployment) -> Iterator[Problem]:
    for service in compose.all_services(deployment.compose):
        if "build" in service.data:
            continue  # a built image may carry its config inside
        if service.is_qtap:
            yield from _qtap_config_mounted(service)
        if not service.is_fluentbit:
            continue
        path, mark, given = compose.config_path(service)
        source = service.target_source(path)
        if source is None:
            if given:
                yield _at(service, mark, "cross-config-not-mounted", Level.ERROR,
                          f"service '{service.name}' runs fluent-bit -c {path}, but no volume "
                          "mounts a file there")
            else:
                yield _at(service, mark, "cross-config-not-mounted", Level.WARNING,
                          f"service '{service.name}' mounts nothing at {path}: fluent-bit "
                          "runs the image's sample config, not yours")
            continue
        yield from _referenced_files(deployment, service, path, source)


def _qtap_config_mounted(service: Service) -> Iterator[Problem]:
    path, mark = compose.qtap_config_path(service)
    if path is None or path.startswith(("http://", "https://")) or "${" in path:
        return  # the built-in default, or a config Qtap downloads
    if service.target_source(path) is None:
        yield _at(service, mark, "cross-config-not-mounted", Level.ERROR,
                  f"service '{service.name}' runs Qtap with --config {path}, but no volume "
                  "mounts a file there")


def _referenced_files(deployment: Deployment, service: Service, container_config: str,
                      source: str) -> Iterator[Problem]:
    """Parsers_File and Lua scripts of the mounted config must be mounted too."""
    configs = [c for c in deployment.fluentbit
               if os.path.abspath(c.path) == os.path.abspath(source)]
    base = os.path.dirname(container_config)
    for cfg in configs:
        refs = [(e, "Parsers_File") for e in cfg.service().get_all("parsers_file")]
        refs += [(e, "Lua script") for s in cfg.of(FILTER) if s.plugin == "lua"
                 for e in s.get_all("script")]
        for entry, what in refs:
            value = entry.value.strip()
            if not value or "${" in value:
                continue
            target = value if os.path.isabs(value) else os.path.join(base, value)
            if service.target_source(target) is None:
                span = entry.value_span or entry.span
                yield Problem(path=span.path if span else cfg.path,
                              line=span.line if span else 1, col=span.col if span else 1,
                              level=Level.WARNING, rule="cross-config-not-mounted",
                              message=f"{what} {value} is {target} inside the "
                                      f"'{service.name}' container, but {service.path} "
                                      "mounts nothing there")


@register("cross-qtap-store", Level.WARNING, "cross",
          "Qtap ships through Fluent Bit (fluentd log driver) but its stores do not write to "
          "stdout")
def check_qtap_stores(deployment: Deployment) -> Iterator[Problem]:
    for service in compose.all_services(deployment.compose):
        if not service.is_qtap or service.log_driver != "fluentd":
            continue
        for doc in links.qtap_docs(deployment, service):
            yield from _stores_to_stdout(doc, service)


def _stores_to_stdout(doc: QtapDoc, service: Service) -> Iterator[Problem]:
    data = doc.data
    if not isinstance(data, YMap):
        return
    services = data.get("services")
    for kind in ("event_stores", "object_stores"):
        # An empty or missing list means "disabled" (qtap.md §1.2). Connection events may be
        # switched off on purpose; without an object store no transaction reaches stdout.
        allowed = QTAP_STDOUT_STORES | ({"disabled"} if kind == "event_stores" else set())
        stores = services.get(kind) if isinstance(services, YMap) else None
        if not isinstance(stores, YList) or not stores:
            if kind == "event_stores":
                continue
            mark = services.mark if isinstance(services, YMap) else data.mark
            yield Problem(path=doc.path, line=mark[0], col=mark[1], level=Level.WARNING,
                          rule="cross-qtap-store",
                          message=f"no services.{kind}: Qtap disables them, so no transaction "
                                  "reaches Fluent Bit through the log driver of service "
                                  f"'{service.name}'; add '- type: stdout'")
            continue
        for i, store in enumerate(stores):
            kind_name = store.get("type") if isinstance(store, YMap) else None
            if isinstance(kind_name, str) and kind_name in allowed:
                continue
            mark = (store.value_mark("type") if isinstance(store, YMap) and "type" in store
                    else stores.item_mark(i))
            yield Problem(path=doc.path, line=mark[0], col=mark[1], level=Level.WARNING,
                          rule="cross-qtap-store",
                          message=f"services.{kind}[{i}] is type '{kind_name}': Qtap sends "
                                  "these records there itself, not to stdout where the fluentd "
                                  f"log driver of service '{service.name}' picks them up for "
                                  "Fluent Bit")
