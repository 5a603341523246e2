"""Rules for Kubernetes manifests: schemas offline, and what the objects assume of each other.

The Fluent Bit configs, parsers, Lua scripts and Qtap YAML inside ConfigMaps go through every
other rule too (see ``validate.kubernetes``); these rules add what only the manifests show.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from qtap_fluent.problems import Level, Problem
from qtap_fluent.validate.kubernetes import K8sDoc, items, pod_spec
from qtap_fluent.validate.registry import register
from qtap_fluent.yamlpos import Mark, YList, YMap, plain

if TYPE_CHECKING:
    from qtap_fluent.validate.deployment import Deployment

#: The oldest Kubernetes release our manifests promise to fit (kubernetes-validate schemas).
SCHEMA_VERSION = "1.30.0"
#: Kinds that are kustomize or CRD documents, not API objects with a published schema.
NOT_API = {"Kustomization", "Component"}
SECRET_ENV = re.compile(r"(SECRET|PASSWORD|PASSWD|TOKEN|ACCESS_KEY|PRIVATE_KEY)", re.IGNORECASE)


def _p(doc: K8sDoc, mark: Mark, rule: str, level: Level, message: str) -> Problem:
    return Problem(path=doc.path, line=mark[0], col=mark[1], level=level, rule=rule,
                   message=message)


@functools.lru_cache(maxsize=64)
def _validator(kind: str, api_version: str) -> Any:
    """A jsonschema validator for ``kind``/``apiVersion`` from kubernetes-validate's schemas."""
    import importlib.resources

    import jsonschema
    from referencing import Registry, Resource

    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    root = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema" / (
        f"v{SCHEMA_VERSION}-local-strict")
    try:
        schema = json.loads((root / f"{kind.lower()}-{group}.json").read_text())
    except (FileNotFoundError, OSError):
        return None
    defs = json.loads((root / "_definitions.json").read_text())
    registry: Registry[Any] = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(defs) @ registry
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def _mark_at(data: Any, path: list[Any], *, key: bool = False) -> Mark:
    mark: Mark = data.mark if isinstance(data, (YMap, YList)) else (1, 1)
    node = data
    for step in path:
        if isinstance(node, YMap) and step in node:
            mark = node.value_mark(step) if not isinstance(node[step], (YMap, YList)) \
                else node.key_mark(step)
            if key and step == path[-1]:
                mark = node.key_mark(step)
            node = node[step]
        elif isinstance(node, YList) and isinstance(step, int) and step < len(node):
            mark = node.item_mark(step)
            node = node[step]
        else:
            break
    return mark


@register("k8s-schema", Level.ERROR, "kubernetes",
          f"a manifest that does not fit the Kubernetes {SCHEMA_VERSION[:4]} API schema "
          "(checked offline, strict: unknown fields are errors)")
def check_schema(d: Deployment) -> Iterator[Problem]:
    for doc in d.manifests.docs:
        kind, api = doc.data.get("kind"), doc.data.get("apiVersion")
        if not isinstance(kind, str) or not isinstance(api, str) or kind in NOT_API:
            continue
        validator = _validator(kind, api)
        if validator is None:
            yield _p(doc, doc.data.mark, "k8s-schema", Level.INFO,
                     f"no Kubernetes {SCHEMA_VERSION[:4]} schema for {kind} {api}: not checked")
            continue
        for error in sorted(validator.iter_errors(plain(doc.data)),
                            key=lambda e: list(map(str, e.absolute_path))):
            path = list(error.absolute_path)
            if error.validator == "additionalProperties" and isinstance(error.instance, dict):
                # Point at the unexpected key itself, not at the mapping that holds it.
                allowed = set(error.schema.get("properties", {}))
                extra = sorted(k for k in error.instance if k not in allowed)
                if extra:
                    path.append(extra[0])
            where = ".".join(str(x) for x in error.absolute_path) or kind
            yield _p(doc, _mark_at(doc.data, path, key=True), "k8s-schema",
                     Level.ERROR, f"{kind} {doc.name}: {where}: {error.message}")


@register("k8s-kustomization", Level.ERROR, "kubernetes",
          "a kustomization.yaml resource that does not exist next to it")
def check_kustomization(d: Deployment) -> Iterator[Problem]:
    for doc in d.manifests.of("Kustomization"):
        resources = doc.data.get("resources")
        if not isinstance(resources, YList):
            continue
        base = os.path.dirname(doc.path)
        for i, res in enumerate(resources):
            if isinstance(res, str) and "://" not in res and not os.path.exists(
                    os.path.join(base, res)):
                yield _p(doc, resources.item_mark(i), "k8s-kustomization", Level.ERROR,
                         f"resource {res!r} does not exist in {base or '.'}")


def _configmaps(d: Deployment) -> dict[tuple[str, str], K8sDoc]:
    out = {}
    for doc in d.manifests.of("ConfigMap"):
        meta = doc.data.get("metadata")
        ns = str(meta.get("namespace", "")) if isinstance(meta, YMap) else ""
        out[(ns, doc.name)] = doc
    return out


def _namespace(doc: K8sDoc) -> str:
    meta = doc.data.get("metadata")
    return str(meta.get("namespace", "")) if isinstance(meta, YMap) else ""


@register("k8s-configmap", Level.ERROR, "kubernetes",
          "a pod mounts a ConfigMap (or a key of one) that the manifests do not define, or "
          "starts Fluent Bit with a config file its ConfigMap does not hold")
def check_configmaps(d: Deployment) -> Iterator[Problem]:
    maps = _configmaps(d)
    if not maps:
        return
    for doc in d.manifests.docs:
        pod = pod_spec(doc)
        if pod is None:
            continue
        ns = _namespace(doc)
        mounted: dict[str, K8sDoc] = {}  # volume name -> ConfigMap
        for vol in items(pod.get("volumes")):
            cm = vol.get("configMap")
            if not isinstance(cm, YMap):
                continue
            target = maps.get((ns, str(cm.get("name"))))
            if target is None:
                yield _p(doc, cm.value_mark("name"), "k8s-configmap", Level.ERROR,
                         f"volume {vol.get('name')!r} mounts ConfigMap {cm.get('name')!r}, "
                         f"which these manifests do not define in namespace {ns or 'default'}")
                continue
            mounted[str(vol.get("name"))] = target
            data = target.data.get("data") or {}
            for item in items(cm.get("items")):
                if item.get("key") not in data:
                    yield _p(doc, item.value_mark("key"), "k8s-configmap", Level.ERROR,
                             f"ConfigMap {target.name!r} has no key {item.get('key')!r}")
        for c in items(pod.get("containers")) + items(pod.get("initContainers")):
            yield from _config_arg(doc, c, mounted)


def _config_arg(doc: K8sDoc, container: YMap, mounted: dict[str, K8sDoc]) -> Iterator[Problem]:
    argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
    for flag in ("-c", "--config"):
        if flag in argv[:-1]:
            path = argv[argv.index(flag) + 1]
            for m in items(container.get("volumeMounts")):
                base = str(m.get("mountPath", "")).rstrip("/")
                cm = mounted.get(str(m.get("name")))
                if cm is None or os.path.dirname(path) != base:
                    continue
                if os.path.basename(path) not in (cm.data.get("data") or {}):
                    args = container.get("args") if "args" in container else container.get(
                        "command")
                    yield _p(doc, args.mark if isinstance(args, YList) else container.mark,
                             "k8s-configmap", Level.ERROR,
                             f"container {container.get('name')!r} reads {path}, but ConfigMap "
                             f"{cm.name!r} mounted at {base} has no key "
                             f"{os.path.basename(path)!r}")


@register("k8s-inline-secret", Level.ERROR, "security",
          "a credential written as a literal env value in a manifest (use a Secret reference "
          "or the service account's IAM role)")
def check_inline_secrets(d: Deployment) -> Iterator[Problem]:
    for doc in d.manifests.docs:
        pod = pod_spec(doc)
        if pod is None:
            continue
        for c in items(pod.get("containers")) + items(pod.get("initContainers")):
            for env in items(c.get("env")):
                name, value = str(env.get("name", "")), env.get("value")
                if SECRET_ENV.search(name) and isinstance(value, str) and value and not (
                        value.startswith("$(")):
                    yield _p(doc, env.value_mark("value"), "k8s-inline-secret", Level.ERROR,
                             f"env {name} of container {c.get('name')!r} holds a literal "
                             "value; use valueFrom.secretKeyRef")


def _service_ports(d: Deployment) -> dict[str, tuple[K8sDoc, set[int]]]:
    out = {}
    for doc in d.manifests.of("Service"):
        spec = doc.data.get("spec")
        ports = {int(p["port"]) for p in items(spec.get("ports") if isinstance(spec, YMap)
                                               else None) if isinstance(p.get("port"), int)}
        out[f"{doc.name}.{_namespace(doc) or 'default'}"] = (doc, ports)
    return out


@register("k8s-forward-tiers", Level.ERROR, "kubernetes",
          "a Fluent Bit forward output aimed at a Service of these manifests that does not "
          "expose that port, or tiers whose forward shared keys differ")
def check_forward_tiers(d: Deployment) -> Iterator[Problem]:
    from qtap_fluent.fluentbit.config.model import INPUT, OUTPUT

    services = _service_ports(d)
    if not services:
        return
    embedded = d.manifests.embedded
    inputs = [s for cfg in d.fluentbit if cfg.path in embedded for s in cfg.of(INPUT)
              if s.plugin == "forward"]
    input_keys = {s.get("shared_key") for s in inputs}
    for cfg in d.fluentbit:
        if cfg.path not in embedded:
            continue
        for out in cfg.of(OUTPUT):
            if out.plugin != "forward":
                continue
            host = (out.get("host") or "").removesuffix(".svc.cluster.local").removesuffix(
                ".svc")
            port = int(out.get("port") or 24224) if (out.get("port") or "24224").isdigit() \
                else None
            entry = out.entry("host") or out.entry("name")
            span = entry.span if entry is not None else None
            line, col = (span.line, span.col) if span else (1, 1)
            origin = Problem(path=cfg.path, line=line, col=col, level=Level.ERROR,
                             rule="k8s-forward-tiers", message="")
            target = services.get(host) or services.get(f"{host}.default")
            if target is None:
                continue
            doc, ports = target
            if port not in ports:
                yield _with(origin, f"forward output sends to {host}:{port}, but Service "
                            f"{doc.name!r} exposes {sorted(ports)}")
            key = out.get("shared_key")
            if inputs and key not in input_keys:
                yield _with(origin, f"forward output Shared_Key {key!r} differs from the "
                            f"receiving tier's {sorted(str(k) for k in input_keys)}")


def _with(p: Problem, message: str) -> Problem:
    return Problem(path=p.path, line=p.line, col=p.col, level=p.level, rule=p.rule,
                   message=message)
