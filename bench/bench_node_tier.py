"""Sizing figures for the Kubernetes node tier: records/s and memory of the generated node
Fluent Bit, fed by our forward client the way the agent feeds it, beside a bare Fluent Bit
(forward -> null) as the peer in the same run.

    python bench/bench_node_tier.py [RECORDS]

Needs ``fluent-bit`` on PATH. Prints records/s through each configuration, the ratio to the
bare peer, and the peak RSS of the Fluent Bit process (from /proc, sampled every 50 ms).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from qtap_fluent.cli.main import main as cli
from qtap_fluent.fluentbit.forward import ForwardClient


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def record(i: int) -> dict[str, object]:
    return {"metadata": {"process_id": "4242", "process_exe": "/usr/bin/curl",
                         "bytes_sent": 120, "bytes_received": 900, "connection_id": f"c{i}"},
            "request": {"method": "GET", "url": f"https://api.example.com/v1/items/{i}",
                        "protocol": "http1", "headers": {"Accept": "*/*",
                                                         "User-Agent": "curl/8.12.1"}},
            "response": {"status": 200, "content_type": "application/json",
                         "headers": {"Content-Type": "application/json"},
                         "body": "eyJvayI6dHJ1ZX0=" * 20},
            "transaction_time": "2026-11-27T08:00:00.000000000Z", "duration_ms": 12,
            "direction": "egress-external"}


def peak_rss(pid: int, stop: threading.Event, out: list[int]) -> None:
    while not stop.is_set():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out.append(int(line.split()[1]))
        except OSError:
            return
        time.sleep(0.05)


def run(config: Path, port: int, n: int) -> tuple[float, int]:
    proc = subprocess.Popen([shutil.which("fluent-bit") or "fluent-bit", "-c", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("fluent-bit did not start") from None
                time.sleep(0.05)
        samples: list[int] = []
        stop = threading.Event()
        t = threading.Thread(target=peak_rss, args=(proc.pid, stop, samples), daemon=True)
        t.start()
        recs = [record(i) for i in range(1000)]
        t0 = time.perf_counter()
        with ForwardClient("127.0.0.1", port, require_ack=True) as client:
            for i in range(n):
                client.emit("docker.qtap", recs[i % 1000])
            client.flush()
        elapsed = time.perf_counter() - t0
        stop.set()
        t.join()
        return n / elapsed, max(samples, default=0)
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    if not shutil.which("fluent-bit"):
        sys.exit("fluent-bit is not on PATH")
    size = len(json.dumps(record(0)))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        assert cli(["gen", "--target", "kubernetes", "--out", str(root / "d"), "--redact",
                    "--enrich"]) == 0
        cm = yaml.safe_load((root / "d/k8s/configmap-fluent-bit.yaml").read_text())
        node = root / "node"
        node.mkdir()
        for key, text in cm["data"].items():
            (node / key).write_text(text)
        cfg = yaml.safe_load((node / "fluent-bit.yaml").read_text())
        port = free_port()
        cfg["service"]["storage.path"] = str(root / "storage")
        cfg["service"]["http_port"] = free_port()
        cfg["pipeline"]["inputs"][0]["port"] = port
        cfg["pipeline"]["outputs"] = [{"name": "null", "match": "*"}]
        (node / "fluent-bit.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        bare = root / "bare.yaml"
        bare_port = free_port()
        bare.write_text(yaml.safe_dump({
            "service": {"flush": 1, "http_server": "off"},
            "pipeline": {"inputs": [{"name": "forward", "listen": "127.0.0.1",
                                     "port": bare_port}],
                         "outputs": [{"name": "null", "match": "*"}]}}))
        # Without the Lua filters: buffering and forwarding alone.
        plain = root / "plain"
        shutil.copytree(node, plain)
        pcfg = yaml.safe_load((plain / "fluent-bit.yaml").read_text())
        pport = free_port()
        pcfg["pipeline"]["inputs"][0]["port"] = pport
        pcfg["service"]["http_port"] = free_port()
        pcfg["service"]["storage.path"] = str(root / "storage2")
        pcfg["pipeline"].pop("filters", None)
        (plain / "fluent-bit.yaml").write_text(yaml.safe_dump(pcfg, sort_keys=False))
        rows = [("bare fluent-bit forward -> null (peer)", run(bare, bare_port, n)),
                ("node tier, filesystem buffering", run(plain / "fluent-bit.yaml", pport, n)),
                ("node tier + Lua redact + enrich", run(node / "fluent-bit.yaml", port, n))]
    print(f"{n} records of ~{size} bytes (JSON), acks on, 2 CPUs shared with the sender")
    base = rows[0][1][0]
    for name, (rate, rss) in rows:
        print(f"{name:42s} {rate:10,.0f} records/s  ({rate / base:4.2f}x)  "
              f"peak RSS {rss / 1024:6.1f} MiB")


if __name__ == "__main__":
    os.environ.setdefault("FORWARD_SHARED_KEY", "bench")
    main()
