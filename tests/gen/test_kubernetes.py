"""``gen --target kubernetes``: manifests valid offline, consistent with each other, runnable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from qtap_fluent.cli.main import main
from tests.gen.test_gen import COMBOS, outputs_args

kv = pytest.importorskip("kubernetes_validate")
CASES = [(kinds, agg) for kinds in COMBOS for agg in (False, True)]


def gen_k8s(tmp_path: Path, *args: str) -> Path:
    out = tmp_path / "deploy"
    assert main(["gen", "--target", "kubernetes", "--out", str(out), *args]) == 0
    return out / "k8s"


def load_docs(k8s: Path) -> dict[str, list[dict[str, Any]]]:
    return {p.name: list(yaml.safe_load_all(p.read_text())) for p in sorted(k8s.glob("*.yaml"))}


def by_kind(docs: dict[str, list[dict[str, Any]]], kind: str) -> list[dict[str, Any]]:
    return [d for ds in docs.values() for d in ds if d["kind"] == kind]


@pytest.mark.parametrize("kinds, agg", CASES,
                         ids=["+".join(k) + ("-agg" if a else "") for k, a in CASES])
def test_every_manifest_validates_against_kubernetes_1_30(tmp_path: Path, kinds: list[str],
                                                          agg: bool) -> None:
    k8s = gen_k8s(tmp_path, *outputs_args(kinds), *(["--aggregator"] if agg else []),
                  "--aws-secret", "aws-creds")
    docs = load_docs(k8s)
    kustomization = docs.pop("kustomization.yaml")[0]
    assert sorted(kustomization["resources"]) == sorted(docs)
    for ds in docs.values():
        for doc in ds:
            kv.validate(doc, "1.30.0", strict=True)
    # Every ConfigMap a pod mounts exists, with the file Fluent Bit is started with.
    maps = {d["metadata"]["name"]: d["data"] for d in by_kind(docs, "ConfigMap")}
    for workload in by_kind(docs, "DaemonSet") + by_kind(docs, "Deployment"):
        pod = workload["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        for c in pod["containers"]:
            for m in c.get("volumeMounts", []):
                assert m["name"] in volumes, (c["name"], m["name"])
                cm = volumes[m["name"]].get("configMap")
                if cm:
                    assert cm["name"] in maps
            if c["name"] == "fluent-bit":
                assert c["args"] == ["-c", "/fluent-bit/etc/fluent-bit.yaml"]
                mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/fluent-bit/etc")
                assert "fluent-bit.yaml" in maps[volumes[mount["name"]]["configMap"]["name"]]
            for env in c.get("env", []):
                assert "value" not in env or not env["name"].startswith("AWS_"), env


def test_daemonset_has_what_ebpf_needs(tmp_path: Path) -> None:
    docs = load_docs(gen_k8s(tmp_path))
    pod = by_kind(docs, "DaemonSet")[0]["spec"]["template"]["spec"]
    assert pod["hostPID"] is True
    assert pod["tolerations"] == [{"operator": "Exists"}]
    agent = next(c for c in pod["containers"] if c["name"] == "agent")
    assert agent["securityContext"]["privileged"] is True
    paths = {m["mountPath"] for m in agent["volumeMounts"]}
    assert {"/sys", "/sys/kernel/debug", "/sys/kernel/tracing", "/host/proc",
            "/lib/modules"} <= paths
    assert "--forward" in agent["args"] and "127.0.0.1:24224" in agent["args"]
    for c in pod["containers"]:
        assert c["resources"]["requests"] and c["resources"]["limits"]
        assert c["livenessProbe"]["httpGet"] and c["readinessProbe"]["httpGet"]


def test_tiers_agree_on_port_and_shared_key(tmp_path: Path) -> None:
    docs = load_docs(gen_k8s(tmp_path, "--output", "s3", "--bucket", "b-1", "--aggregator",
                             "--iam-role-arn", "arn:aws:iam::123456789012:role/qtap"))
    maps = {d["metadata"]["name"]: d["data"] for d in by_kind(docs, "ConfigMap")}
    node = yaml.safe_load(maps["qtap-fluent-fluent-bit"]["fluent-bit.yaml"])
    agg = yaml.safe_load(maps["qtap-fluent-aggregator-fluent-bit"]["fluent-bit.yaml"])
    out = node["pipeline"]["outputs"][0]
    inp = agg["pipeline"]["inputs"][0]
    service = by_kind(docs, "Service")[0]
    assert out["name"] == "forward" and inp["name"] == "forward"
    assert str(out["port"]) == str(inp["port"]) == str(service["spec"]["ports"][0]["port"])
    assert out["host"].startswith(service["metadata"]["name"] + ".")
    assert out["shared_key"] == inp["shared_key"] == "${FORWARD_SHARED_KEY}"
    assert agg["pipeline"]["outputs"][0]["name"] == "s3"
    for cfg in (node, agg):
        assert cfg["service"]["storage.path"]
        assert cfg["pipeline"]["inputs"][0]["storage.type"] == "filesystem"
    sa = by_kind(docs, "ServiceAccount")[0]
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith("role/qtap")
    refs = {e["valueFrom"]["secretKeyRef"]["name"]
            for w in by_kind(docs, "DaemonSet") + by_kind(docs, "Deployment")
            for c in w["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])
            if "valueFrom" in e}
    assert refs == {"qtap-fluent-forward"}


def test_bad_kubernetes_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["gen", "--target", "kubernetes", "--out", str(tmp_path / "o"),
               "--namespace", "Bad_NS"])
    assert rc == 1
    assert "--namespace" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


FLUENT_BIT = shutil.which("fluent-bit")
needs_fb = pytest.mark.skipif(FLUENT_BIT is None, reason="no fluent-bit binary on PATH")


def extract(k8s: Path, cm_name: str, dest: Path) -> Path:
    for doc in (d for ds in load_docs(k8s).values() for d in ds):
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == cm_name:
            dest.mkdir(parents=True)
            for key, text in doc["data"].items():
                (dest / key).write_text(text)
            return dest / "fluent-bit.yaml"
    raise AssertionError(cm_name)


@needs_fb
@pytest.mark.fluentbit
def test_configs_in_configmaps_pass_dry_run(tmp_path: Path) -> None:
    k8s = gen_k8s(tmp_path, "--output", "s3", "--output", "cloudwatch", "--bucket", "b-1",
                  "--aggregator", "--redact", "--enrich")
    for cm in ("qtap-fluent-fluent-bit", "qtap-fluent-aggregator-fluent-bit"):
        conf = extract(k8s, cm, tmp_path / cm)
        proc = subprocess.run([str(FLUENT_BIT), "--dry-run", "-c", str(conf)], check=False,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def replay_capture(path: Path, n: int) -> None:
    """A pcap of ``n`` plain HTTP/1.1 exchanges from 192.0.2.10 to 198.51.100.20:80."""
    from tests.agent.pcapwrite import Pkt, pcap

    ack, psh_ack, syn, fin_ack = 16, 24, 2, 17
    pkts: list[Pkt] = []
    for i in range(n):
        c, srv = ("192.0.2.10", 40000 + i), ("198.51.100.20", 80)
        req = (f"GET /items/{i} HTTP/1.1\r\nHost: api.example.com\r\n"
               "User-Agent: test\r\n\r\n").encode()
        body = b'{"ok":true}'
        res = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
               + str(len(body)).encode() + b"\r\n\r\n" + body)
        t = 1_700_000_000_000_000_000 + i * 10_000_000
        pkts += [Pkt(t, c, srv, 1000, syn), Pkt(t + 1, srv, c, 5000, syn | ack),
                 Pkt(t + 2, c, srv, 1001, ack), Pkt(t + 3, c, srv, 1001, psh_ack, req),
                 Pkt(t + 4, srv, c, 5001, psh_ack, res),
                 Pkt(t + 5, c, srv, 1001 + len(req), fin_ack),
                 Pkt(t + 6, srv, c, 5001 + len(res), fin_ack)]
    path.write_bytes(pcap(pkts))


@needs_fb
@pytest.mark.fluentbit
def test_node_tier_forwards_to_aggregator(tmp_path: Path) -> None:
    """Both tiers as local Fluent Bit processes, the agent replaying a capture into the node
    tier as the DaemonSet runs it: every transaction reaches the aggregator's output."""
    import sys

    from tests.gen.test_fluentbit_binary import free_port, start, stop, wait_port

    k8s = gen_k8s(tmp_path, "--aggregator")
    node_port, agg_port = free_port(), free_port()
    node = extract(k8s, "qtap-fluent-fluent-bit", tmp_path / "node")
    agg = extract(k8s, "qtap-fluent-aggregator-fluent-bit", tmp_path / "agg")
    qtap = extract_key(k8s, "qtap-fluent-qtap", "qtap-config.yaml", tmp_path / "qtap")
    # Cluster addresses and paths become local ones; everything else runs as generated.
    for conf, store, port in ((node, "node-store", node_port), (agg, "agg-store", agg_port)):
        cfg = yaml.safe_load(conf.read_text())
        cfg["service"]["storage.path"] = str(tmp_path / store)
        cfg["service"]["http_port"] = free_port()
        cfg["pipeline"]["inputs"][0]["port"] = port
        for out in cfg["pipeline"]["outputs"]:
            if out["name"] == "forward":
                out["host"], out["port"] = "127.0.0.1", agg_port
        conf.write_text(yaml.safe_dump(cfg, sort_keys=False))
    capture = tmp_path / "capture.pcap"
    replay_capture(capture, 25)
    daemonset = next(d for ds in load_docs(k8s).values() for d in ds if d["kind"] == "DaemonSet")
    agent_args = next(c["args"] for c in daemonset["spec"]["template"]["spec"]["containers"]
                      if c["name"] == "agent")
    args = [a.replace("/etc/qtap-fluent/qtap-config.yaml", str(qtap))
             .replace("127.0.0.1:24224", f"127.0.0.1:{node_port}") for a in agent_args]
    args = [a for a in args if a != "--metrics-listen" and not a.startswith("0.0.0.0:")]
    os.environ["FORWARD_SHARED_KEY"] = "k8s-test-key"
    try:
        agg_proc = start(agg, tmp_path / "agg.log")
        node_proc = start(node, tmp_path / "node.log")
        try:
            wait_port(agg_port, agg_proc, tmp_path / "agg.log")
            wait_port(node_port, node_proc, tmp_path / "node.log")
            agent = subprocess.run([sys.executable, "-m", "qtap_fluent", *args, "--replay",
                                    str(capture)], capture_output=True, text=True,
                                   timeout=120, check=False)
            assert agent.returncode == 0, agent.stderr
            deadline = time.monotonic() + 30
            got: list[dict[str, Any]] = []
            while time.monotonic() < deadline and len(got) < 25:
                time.sleep(0.5)
                got = [json.loads(ln) for ln in (tmp_path / "agg.log").read_text().splitlines()
                       if ln.startswith("{")]
        finally:
            stop(node_proc)
            stop(agg_proc)
    finally:
        del os.environ["FORWARD_SHARED_KEY"]
    assert sorted(r["request"]["url"] for r in got) == sorted(
        f"http://api.example.com/items/{i}" for i in range(25)), agent.stderr
    assert all(r["response"]["status"] == 200 and r["direction"] == "egress-external"
               for r in got)


def extract_key(k8s: Path, cm_name: str, key: str, dest: Path) -> Path:
    for doc in (d for ds in load_docs(k8s).values() for d in ds):
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == cm_name:
            dest.mkdir(parents=True)
            (dest / key).write_text(doc["data"][key])
            return dest / key
    raise AssertionError(cm_name)
