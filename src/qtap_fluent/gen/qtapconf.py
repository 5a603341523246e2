"""Read what ``gen`` needs from a Qtap YAML, and rewrite it for the Fluent Bit pipeline.

The rewrite points every event and object store at ``stdout`` (Docker's fluentd log driver then
carries the records to Fluent Bit) and keeps everything else; store ids stay, so plugins that
select a store by id still find one. ``--errors-only`` turns every ``http_capture`` plugin into
the guide's rule: capture nothing, except responses with status >= 400 at level ``full``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import yaml

ERRORS_RULE = {"name": "Capture errors", "expr": "http.res.status >= 400", "level": "full"}


@dataclass(slots=True, kw_only=True)
class S3Store:
    """The first ``s3`` object store of a Qtap YAML, as the Fluent Bit s3 output needs it."""

    bucket: str | None = None
    region: str | None = None
    endpoint: str | None = None  #: URL; None for AWS itself
    env: dict[str, str] = field(default_factory=dict)  #: AWS_* name -> host env variable
    clear_text_secrets: list[str] = field(default_factory=list)  #: keys given as type: text


def s3_store(data: Any) -> S3Store | None:
    """The first ``s3`` entry of ``services.object_stores``, or None."""
    stores = _get(data, "services", "object_stores")
    if not isinstance(stores, list):
        return None
    for store in stores:
        if isinstance(store, dict) and store.get("type") == "s3":
            return _s3(store)
    return None


def _s3(store: dict[str, Any]) -> S3Store:
    out = S3Store(bucket=_str(store.get("bucket")), region=_str(store.get("region")))
    endpoint = _str(store.get("endpoint"))
    # Qtap's default endpoint is AWS itself; anything else is a custom (MinIO-like) endpoint,
    # plain HTTP when ``insecure`` is set (Qtap's minio client does the same).
    if endpoint and endpoint not in ("s3.amazonaws.com",) and not endpoint.endswith(
            ".amazonaws.com"):
        if "://" not in endpoint:
            scheme = "http" if store.get("insecure") is True else "https"
            endpoint = f"{scheme}://{endpoint}"
        out.endpoint = endpoint
    for key, env_name in (("access_key", "AWS_ACCESS_KEY_ID"),
                          ("secret_key", "AWS_SECRET_ACCESS_KEY")):
        source = store.get(key)
        if isinstance(source, dict):
            if source.get("type") == "env" and _str(source.get("value")):
                out.env[env_name] = str(source["value"])
            elif source.get("type") == "text":
                out.clear_text_secrets.append(key)
    return out


def rewrite(data: Any, *, errors_only: bool) -> dict[str, Any]:
    """A copy of the Qtap config with stdout stores (and the errors-only rule when asked)."""
    out: dict[str, Any] = copy.deepcopy(data) if isinstance(data, dict) else {}
    services = out.get("services")
    if not isinstance(services, dict):
        services = {}
        out["services"] = services
    for key in ("event_stores", "object_stores"):
        services[key] = _stdout_stores(services.get(key))
    if errors_only:
        _errors_only(out)
    return out


def _stdout_stores(stores: Any) -> list[dict[str, Any]]:
    if not isinstance(stores, list) or not stores:
        return [{"type": "stdout"}]
    result: list[dict[str, Any]] = []
    for store in stores:
        entry: dict[str, Any] = {}
        if isinstance(store, dict) and store.get("id"):
            entry["id"] = store["id"]
        entry["type"] = "stdout"
        if entry not in result:
            result.append(entry)
    return result


def _errors_only(data: dict[str, Any]) -> None:
    found = False
    stacks = data.get("stacks")
    if isinstance(stacks, dict):
        for stack in stacks.values():
            plugins = stack.get("plugins") if isinstance(stack, dict) else None
            for plugin in plugins if isinstance(plugins, list) else []:
                if isinstance(plugin, dict) and plugin.get("type") == "http_capture":
                    config = plugin.get("config")
                    if not isinstance(config, dict):
                        config = {}
                        plugin["config"] = config
                    config["level"] = "none"
                    config.setdefault("format", "json")
                    config["rules"] = [dict(ERRORS_RULE)]
                    found = True
    if found:
        return
    # No http_capture anywhere: add the guide's error_only stack and route HTTP through it.
    stacks = data.setdefault("stacks", {}) if isinstance(data.get("stacks"), dict) else {}
    data["stacks"] = stacks
    stacks["error_only"] = {"plugins": [{"type": "http_capture", "config": {
        "level": "none", "format": "json", "rules": [dict(ERRORS_RULE)]}}]}
    tap = data.get("tap")
    if not isinstance(tap, dict):
        tap = {}
        data["tap"] = tap
    tap["http"] = {"stack": "error_only"}


def dump(data: dict[str, Any], header: str) -> str:
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True,
                          width=4096)
    lines = "".join(f"# {line}\n" for line in header.splitlines())
    return lines + "\n" + body


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
