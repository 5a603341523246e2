"""The ``docker-compose.yaml`` of a deployment: Fluent Bit, Qtap, and MinIO when asked for.

As in the guide: Fluent Bit and Qtap on the host network, Qtap privileged with host PID and
``/sys`` for eBPF, its stdout carried by Docker's ``fluentd`` log driver (tag and address equal to
the forward input's). Credentials appear only as references to the host environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from qtap_fluent.gen.spec import DEFAULT_MINIO_BUCKET, GenSpec

FLUENT_BIT_IMAGE = "fluent/fluent-bit:5.1.1"  # the release whose property facts we check against
QTAP_IMAGE = "us-docker.pkg.dev/qpoint-edge/public/qtap:v0"
MINIO_IMAGE = "minio/minio:latest"
MC_IMAGE = "minio/mc:latest"
ETC = "/fluent-bit/etc"
AWS_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def compose_document(spec: GenSpec, mounts: Mapping[str, str], config_file: str,
                     aws_env: Mapping[str, str]) -> dict[str, Any]:
    """The compose document.

    ``mounts`` maps each file Fluent Bit reads (name inside ``/fluent-bit/etc``) to its host
    path; ``config_file`` is the one Fluent Bit is started with; ``aws_env`` maps AWS variable
    names to host variables (from the Qtap s3 store) when they differ.
    """
    fluent_bit: dict[str, Any] = {
        "image": FLUENT_BIT_IMAGE,
        "container_name": "fluent-bit",
        "network_mode": "host",
        "restart": "unless-stopped",
        "volumes": [f"{host}:{ETC}/{name}:ro" for name, host in mounts.items()
                    if name not in ("qtap-config.yaml", "serve.yaml")],
        "entrypoint": ["/fluent-bit/bin/fluent-bit"],
        "command": ["-c", f"{ETC}/{config_file}"],
    }
    env = _fluent_bit_env(spec, aws_env)
    if env:
        fluent_bit["environment"] = env
    if {"s3", "minio"} & set(spec.outputs):
        # store_dir survives restarts: buffered objects are uploaded, not lost.
        fluent_bit["volumes"].append("fluent-bit-buffer:/tmp/fluent-bit")
    qtap: dict[str, Any] = {
        "image": QTAP_IMAGE,
        "container_name": "qtap",
        "depends_on": ["fluent-bit"],
        "privileged": True,
        "user": "0:0",
        "cap_add": ["CAP_BPF", "CAP_SYS_ADMIN"],
        "pid": "host",
        "network_mode": "host",
        "restart": "unless-stopped",
        "volumes": ["/sys:/sys", f"{mounts['qtap-config.yaml']}:/app/config/qtap.yaml:ro"],
        "environment": ["TINI_SUBREAPER=1"],
        "ulimits": {"memlock": -1},
        "logging": {
            "driver": "fluentd",
            "options": {
                "tag": spec.tag,
                "fluentd-address": f"127.0.0.1:{spec.port}",
                # Buffer in Docker while Fluent Bit (re)starts instead of failing the container.
                "fluentd-async": "true",
                "fluentd-sub-second-precision": "true",
            },
        },
        # JSON log lines, so Fluent Bit's JSON parser reads every line Qtap writes.
        "command": ["--log-level=warn", "--log-encoding=json",
                    "--config=/app/config/qtap.yaml"],
    }
    capture = qtap if spec.agent == "qtap" else _agent_service(spec, mounts)
    services: dict[str, Any] = {"fluent-bit": fluent_bit, capture["container_name"]: capture}
    doc: dict[str, Any] = {"services": services}
    if "serve" in spec.outputs:
        services["serve"] = _serve_service(mounts)
        fluent_bit["depends_on"] = ["serve"]
    if "minio" in spec.outputs:
        services.update(_minio_services(spec))
        fluent_bit["depends_on"] = {"minio-init": {"condition": "service_completed_successfully"}}
    volumes: dict[str, Any] = {}
    if "fluent-bit-buffer:/tmp/fluent-bit" in fluent_bit["volumes"]:
        volumes["fluent-bit-buffer"] = {}
    if "minio" in spec.outputs:
        volumes["minio-data"] = {}
    if "serve" in spec.outputs:
        volumes["serve-spool"] = {}
    if volumes:
        doc["volumes"] = volumes
    return doc


def _serve_service(mounts: Mapping[str, str]) -> dict[str, Any]:
    from qtap_fluent import __version__

    return {
        "image": f"qtap-fluent:{__version__}",  # built from the Dockerfile of qtap-fluent
        "container_name": "qtap-fluent-serve",
        "network_mode": "host",
        "restart": "unless-stopped",
        "command": ["serve", "--config", "/etc/qtap-fluent/serve.yaml"],
        "volumes": [f"{mounts.get('serve.yaml', './serve.yaml')}:/etc/qtap-fluent/serve.yaml:ro",
                    "serve-spool:/var/lib/qtap-fluent/serve"],
        "environment": list(AWS_ENV),
    }


def _agent_service(spec: GenSpec, mounts: Mapping[str, str]) -> dict[str, Any]:
    """``qtap-fluent agent`` in place of Qtap: eBPF capture, forward straight to Fluent Bit."""
    from qtap_fluent import __version__

    return {
        "image": f"qtap-fluent:{__version__}",  # built from qtap-fluent's Dockerfile
        "container_name": "qtap-fluent-agent",
        "depends_on": ["fluent-bit"],
        "privileged": True,
        "user": "0:0",
        "pid": "host",
        "network_mode": "host",
        "restart": "unless-stopped",
        "volumes": ["/sys:/sys", "/sys/kernel/debug:/sys/kernel/debug",
                    "/sys/kernel/tracing:/sys/kernel/tracing", "/lib/modules:/lib/modules:ro",
                    "/usr/src:/usr/src:ro",
                    f"{mounts['qtap-config.yaml']}:/app/config/qtap.yaml:ro"],
        "ulimits": {"memlock": -1},
        "command": ["agent", "--config", "/app/config/qtap.yaml", "--sink", "forward",
                    "--forward", f"127.0.0.1:{spec.port}", "--tag", spec.tag,
                    "--shape", spec.record_shape, "--metrics-listen", "127.0.0.1:10001"],
    }


def _fluent_bit_env(spec: GenSpec, aws_env: Mapping[str, str]) -> list[str]:
    env: list[str] = []
    if "minio" in spec.outputs and not ({"s3", "cloudwatch"} & set(spec.outputs)):
        env += ["AWS_ACCESS_KEY_ID=${MINIO_ROOT_USER:?set MINIO_ROOT_USER}",
                "AWS_SECRET_ACCESS_KEY=${MINIO_ROOT_PASSWORD:?set MINIO_ROOT_PASSWORD}"]
    elif {"s3", "cloudwatch"} & set(spec.outputs):
        # Passed through from the host when set; otherwise Fluent Bit falls back to the
        # instance or task role (preferred: no long-lived keys at all).
        for name in AWS_ENV:
            source = aws_env.get(name)
            env.append(f"{name}=${{{source}}}" if source and source != name else name)
    return env


def _minio_services(spec: GenSpec) -> dict[str, Any]:
    bucket = spec.bucket or DEFAULT_MINIO_BUCKET
    creds = ["MINIO_ROOT_USER=${MINIO_ROOT_USER:?set MINIO_ROOT_USER}",
             "MINIO_ROOT_PASSWORD=${MINIO_ROOT_PASSWORD:?set MINIO_ROOT_PASSWORD}"]
    init = (
        'mc alias set local http://minio:9000 "$${MINIO_ROOT_USER}" "$${MINIO_ROOT_PASSWORD}" '
        f"&& mc mb --ignore-existing local/{bucket} "
        f"&& mc ilm rule add --expire-days {spec.retention_days} local/{bucket}"
    )
    return {
        "minio": {
            "image": MINIO_IMAGE,
            "container_name": "minio",
            "command": ["server", "/data", "--console-address", ":9001"],
            "ports": ["127.0.0.1:9000:9000", "127.0.0.1:9001:9001"],
            "environment": list(creds),
            "volumes": ["minio-data:/data"],
            "restart": "unless-stopped",
            "healthcheck": {"test": ["CMD", "mc", "ready", "local"], "interval": "5s",
                            "timeout": "5s", "retries": 12},
        },
        "minio-init": {
            "image": MC_IMAGE,
            "depends_on": {"minio": {"condition": "service_healthy"}},
            "environment": list(creds),
            "entrypoint": ["/bin/sh", "-c"],
            "command": [init],
            "restart": "no",
        },
    }


def dump(doc: dict[str, Any], header: str) -> str:
    body = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=4096)
    return "".join(f"# {line}\n" for line in header.splitlines()) + body
