"""Generated configs against a real Fluent Bit (skipped when no ``fluent-bit`` is on PATH).

Every output combination passes ``--dry-run`` in both formats and keeps running when started;
records sent the way Docker's fluentd log driver sends them come out filtered as configured, the
same from the classic and the YAML config; the s3 output uploads to a local S3 (moto) server.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qtap_fluent.cli.main import main
from tests.gen.test_gen import COMBOS, outputs_args

FLUENT_BIT = shutil.which("fluent-bit")
pytestmark = [
    pytest.mark.fluentbit,
    pytest.mark.skipif(FLUENT_BIT is None, reason="no fluent-bit binary on PATH"),
]

#: Fake credentials so Fluent Bit's AWS provider chain stops at the environment and never asks
#: the instance metadata address.
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_EC2_METADATA_DISABLED": "true"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def generate(tmp_path: Path, name: str, *args: str) -> Path:
    out = tmp_path / name
    rc = main(["gen", "--out", str(out), "--port", str(free_port()), "--http-port",
               str(free_port()), *args])
    assert rc == 0
    return out


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **AWS_ENV}
    with log.open("wb") as fh:
        return subprocess.Popen([str(FLUENT_BIT), "-c", str(config)], stdout=fh,
                                stderr=subprocess.STDOUT, env=env, cwd=config.parent)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"fluent-bit never listened on {port}:\n{log.read_text()}")


def forward_port(out: Path) -> int:
    for line in (out / "fluent-bit.conf").read_text().splitlines():
        if line.strip().startswith("Port "):
            return int(line.split()[1])
    raise AssertionError("no Port in fluent-bit.conf")


@pytest.mark.parametrize("kinds", COMBOS, ids=["+".join(c) for c in COMBOS])
def test_dry_run_accepts_both_formats(tmp_path: Path, kinds: list[str]) -> None:
    out = generate(tmp_path, "d", *outputs_args(kinds))
    for name in ("fluent-bit.conf", "fluent-bit.yaml"):
        proc = subprocess.run([str(FLUENT_BIT), "--dry-run", "-c", str(out / name)], check=False,
                              capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "configuration test is successful" in proc.stdout + proc.stderr


RUN_COMBOS = [c for c in COMBOS if len(c) in (1, len(COMBOS[-1]))]


@pytest.mark.parametrize("kinds", RUN_COMBOS, ids=["+".join(c) for c in RUN_COMBOS])
def test_starts_and_keeps_running(tmp_path: Path, kinds: list[str]) -> None:
    out = generate(tmp_path, "d", *outputs_args(kinds), "--endpoint",
                   f"http://127.0.0.1:{free_port()}")
    log = tmp_path / "fb.log"
    proc = start(out / "fluent-bit.yaml", log)
    try:
        wait_port(forward_port(out), proc, log)
        time.sleep(2)
        assert proc.poll() is None, log.read_text()
        assert "[error]" not in log.read_text(), log.read_text()
    finally:
        stop(proc)


def docker_record(url: str, status: int = 200, source: str = "stdout") -> dict[str, object]:
    tx = {"metadata": {"process_id": "42", "process_exe": "/usr/bin/curl"},
          "request": {"method": "GET", "url": url, "protocol": "http1"},
          "response": {"status": status},
          "transaction_time": "2025-10-16T22:42:51.951526489Z", "duration_ms": 3,
          "direction": "egress-external"}
    return {"container_id": "0" * 64, "container_name": "/qtap", "source": source,
            "log": json.dumps(tx, separators=(",", ":"))}


def send(port: int, records: list[dict[str, object]], tag: str = "docker.qtap") -> None:
    from fluent import sender

    s = sender.FluentSender(tag.split(".")[0], host="127.0.0.1", port=port)
    for r in records:
        assert s.emit_with_time(tag.split(".", 1)[1], int(time.time()), r), s.last_error
    s.close()


def run_pipeline(out: Path, config: str, records: list[dict[str, object]],
                 tmp_path: Path) -> list[dict[str, object]]:
    log = tmp_path / f"{config}.log"
    proc = start(out / config, log)
    try:
        wait_port(forward_port(out), proc, log)
        send(forward_port(out), records)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            lines = [ln for ln in log.read_text().splitlines() if ln.startswith("{")]
            if lines and time.monotonic() > deadline - 9:
                break
            time.sleep(0.25)
    finally:
        stop(proc)
    return [json.loads(ln) for ln in log.read_text().splitlines() if ln.startswith("{")]


def test_records_flow_filtered_and_both_formats_agree(tmp_path: Path) -> None:
    out = generate(tmp_path, "d", "--include-domain", "api.important.com",
                   "--exclude-url", "/health$")
    records = [docker_record("https://api.important.com/v1/users"),
               docker_record("https://api.important.com/health"),
               docker_record("https://example.com/"),
               docker_record("https://api.important.com/v1/x", 500),
               docker_record("https://api.important.com/v1/users", source="stderr")]
    results = {}
    for config in ("fluent-bit.yaml", "fluent-bit.conf"):
        got = run_pipeline(out, config, records, tmp_path)
        for r in got:
            r.pop("date", None)
        results[config] = got
    yaml_out = results["fluent-bit.yaml"]
    assert [(r["request"]["url"], r["response"]["status"]) for r in yaml_out] == [  # type: ignore[index]
        ("https://api.important.com/v1/users", 200), ("https://api.important.com/v1/x", 500)]
    assert yaml_out[0]["metadata"] == {"process_id": "42", "process_exe": "/usr/bin/curl"}
    assert "log" not in yaml_out[0]
    assert results["fluent-bit.conf"] == yaml_out


def test_s3_output_uploads_gzip_objects(tmp_path: Path, moto_endpoint: str) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket="capture-bucket")
    out = generate(tmp_path, "d", "--output", "s3", "--bucket", "capture-bucket",
                   "--endpoint", moto_endpoint)
    # store_dir must be writable here; the container path is kept in the generated file.
    conf = out / "fluent-bit.yaml"
    conf.write_text(conf.read_text().replace("/tmp/fluent-bit/s3", str(tmp_path / "store")))
    log = tmp_path / "fb.log"
    proc = start(conf, log)
    try:
        wait_port(forward_port(out), proc, log)
        send(forward_port(out), [docker_record(f"https://svc/{i}") for i in range(50)])
        time.sleep(7)  # Flush 5: the chunk reaches the s3 output's buffer
    finally:
        stop(proc)  # Fluent Bit uploads what it buffered on shutdown
    objects = s3.list_objects_v2(Bucket="capture-bucket").get("Contents", [])
    assert objects, log.read_text()
    urls = []
    for obj in objects:
        assert obj["Key"].startswith("qtap/year="), obj["Key"]
        assert obj["Key"].endswith(".gz")
        body = s3.get_object(Bucket="capture-bucket", Key=obj["Key"])["Body"].read()
        for line in gzip.decompress(body).decode().splitlines():
            urls.append(json.loads(line)["request"]["url"])
    assert sorted(urls) == sorted(f"https://svc/{i}" for i in range(50))


def test_lua_filters_run_inside_fluent_bit(tmp_path: Path) -> None:
    out = generate(tmp_path, "d", "--redact", "--redact-header", "X-Team-Token", "--enrich",
                   "--drop-status", "300-399")
    tx = json.loads(str(docker_record("https://api.example.com/v1/users?token=abc&page=2",
                                      500)["log"]))
    tx["request"]["headers"] = {"Authorization": "Bearer s3cr3t", "X-Team-Token": "t0k",
                                "Accept": "*/*"}
    rec = {"container_id": "0" * 64, "container_name": "/qtap", "source": "stdout",
           "log": json.dumps(tx)}
    got = run_pipeline(out, "fluent-bit.yaml",
                       [rec, docker_record("https://api.example.com/moved", 301)], tmp_path)
    assert len(got) == 1, got
    r = got[0]
    headers = r["request"]["headers"]  # type: ignore[index]
    assert headers["Authorization"] != "Bearer s3cr3t" and "s3cr3t" not in json.dumps(r)
    assert headers["X-Team-Token"] != "t0k" and headers["Accept"] == "*/*"
    assert "abc" not in r["request"]["url"]  # type: ignore[index]
    assert r["response"]["status"] == 500  # type: ignore[index]
    assert any(v == "5xx" for v in r.values()), r


def test_qtap_fluent_agent_feeds_the_compose_pipeline(tmp_path: Path) -> None:
    """``--agent qtap-fluent``: the agent, run as the compose service runs it (replaying a
    capture), sends docker-shaped records over forward; the pipeline filters them as usual."""
    import yaml

    from tests.gen.test_kubernetes import replay_capture

    out = generate(tmp_path, "d", "--agent", "qtap-fluent", "--exclude-url", "/items/1$")
    compose = yaml.safe_load((out / "docker-compose.yaml").read_text())
    service = compose["services"]["qtap-fluent-agent"]
    args = [a.replace("/app/config/qtap.yaml", str(out / "qtap-config.yaml"))
            for a in service["command"]]
    args = [a for a in args if a != "--metrics-listen" and a != "127.0.0.1:10001"]
    capture = tmp_path / "capture.pcap"
    replay_capture(capture, 5)
    log = tmp_path / "fb.log"
    proc = start(out / "fluent-bit.yaml", log)
    try:
        wait_port(forward_port(out), proc, log)
        agent = subprocess.run([sys.executable, "-m", "qtap_fluent", *args, "--replay",
                                str(capture)], capture_output=True, text=True, timeout=120,
                               check=False)
        assert agent.returncode == 0, agent.stderr
        deadline = time.monotonic() + 15
        got: list[dict[str, object]] = []
        while time.monotonic() < deadline and len(got) < 4:
            time.sleep(0.3)
            got = [json.loads(ln) for ln in log.read_text().splitlines() if ln.startswith("{")]
    finally:
        stop(proc)
    urls = sorted(r["request"]["url"] for r in got)  # type: ignore[index]
    assert urls == [f"http://api.example.com/items/{i}" for i in (0, 2, 3, 4)], agent.stderr
    assert all("log" not in r and r["metadata"] for r in got)
