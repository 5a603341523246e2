"""The whole agent on the eBPF source: curl over HTTPS in, Qtap records out (file sink).

Runs ``qtap_fluent.cli.cmd_agent`` in its own process as the CLI would, stops it with SIGINT
and SIGTERM, and checks the records a user cares about. Marked ``bpf``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import SNI_NAME, Certs, Server, bpf_missing

pytestmark = pytest.mark.bpf

POLICY = """\
version: 2
services:
  event_stores:
    - type: stdout
  object_stores:
    - type: stdout
stacks:
  default:
    plugins:
      - type: http_capture
        config:
          level: full
          format: json
tap:
  direction: all
  ignore_loopback: false
  audit_include_dns: false
  http:
    stack: default
"""

RUN_AGENT = """
import argparse, sys
from qtap_fluent.cli import cmd_agent
p = argparse.ArgumentParser()
cmd_agent.add_arguments(p)
try:
    sys.exit(cmd_agent.run(p.parse_args(sys.argv[1:])))
except KeyboardInterrupt:
    sys.exit(130)
"""


def perf_fds(pid: int) -> int:
    """How many probe/tracepoint attachments (perf_event fds) a process holds."""
    n = 0
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0
    for fd in fds:
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[perf_event]"
        except OSError:
            continue
    return n


def wait_attached(pid: int, timeout: float = 120.0) -> bool:
    """Until the agent holds its tracepoints and uprobes and that number stops growing.

    The agent logs a "capturing" line at INFO, but the CLI does not show INFO yet.
    """
    deadline, last, stable_since = time.monotonic() + timeout, -1, time.monotonic()
    while time.monotonic() < deadline:
        n = perf_fds(pid)
        if n != last:
            last, stable_since = n, time.monotonic()
        elif n > 28 and time.monotonic() - stable_since > 1.5:
            return True
        time.sleep(0.2)
    return False


def records(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line still being written
    return out


def url_of(rec: dict[str, object]) -> str:
    req = rec.get("request")
    return str(req.get("url", "")) if isinstance(req, dict) else ""


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_agent_records_curl_https_and_stops_cleanly(tmp_path: Path, https_server: Server,
                                                    certs: Certs, stop_signal: int) -> None:
    why = bpf_missing()
    if why:
        pytest.skip(why)
    pytest.importorskip("qtap_fluent.cli.cmd_agent")
    (tmp_path / "qtap.yaml").write_text(POLICY)
    out = tmp_path / "records.jsonl"
    agent = subprocess.Popen([sys.executable, "-c", RUN_AGENT, "--config", str(tmp_path / "qtap.yaml"),
                              "--sink", "file", "--file", str(out)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    curl = os.path.realpath(shutil.which("curl") or "curl")

    def get(path: str) -> None:
        subprocess.run([curl, "-sS", "-o", "/dev/null", "--cacert", str(certs.ca),
                        "-H", "X-Test: yes", f"https://127.0.0.1:{https_server.port}{path}"],
                       check=True)

    def from_curl(fragment: str) -> list[dict[str, object]]:
        return [r for r in records(out) if fragment in url_of(r)
                and r["metadata"]["process_exe"] == curl]  # type: ignore[index]

    try:
        assert wait_attached(agent.pid), "the agent did not attach its probes in time"
        get("/agent/checked")
        time.sleep(2.0)  # let the agent read, pair and write the transaction
    finally:
        agent.send_signal(stop_signal)
        _, err = agent.communicate(timeout=30)
    mine = from_curl("/agent/checked")  # the file sink flushes on close
    assert mine, f"no record for curl's request; agent said: {err.decode()[-2000:]}"
    assert agent.returncode in (0, 130), err.decode()
    rec = mine[0]
    req, resp, meta = rec["request"], rec["response"], rec["metadata"]
    assert isinstance(req, dict) and isinstance(resp, dict) and isinstance(meta, dict)
    assert req["method"] == "GET"
    assert req["url"] == f"https://127.0.0.1:{https_server.port}/agent/checked"
    assert resp["status"] == 200
    assert base64.b64decode(resp["body"]) == b"hello /agent/checked"
    assert req["headers"].get("X-Test") == "yes"
    assert meta["process_exe"] == curl and int(meta["process_id"]) > 0
    assert str(rec["direction"]).startswith("egress")
    # The server's side of the same exchange, seen from the server process.
    theirs = [r for r in records(out) if "/agent/checked" in url_of(r)
              and int(r["metadata"]["process_id"]) == https_server.proc.pid]  # type: ignore[index]
    assert theirs and theirs[0]["direction"] == "ingress"
    assert theirs[0]["response"]["status"] == 200  # type: ignore[index]


def test_agent_sends_docker_shaped_records_over_forward(tmp_path: Path, https_server: Server,
                                                        certs: Certs) -> None:
    """Live capture -> forward (acks on) -> a local forward receiver, in the ``docker`` shape
    the guide's Fluent Bit pipeline parses (JSON transaction in ``log``, ``source: stdout``)."""
    import asyncio
    import socket
    import threading

    from qtap_fluent.fluentbit.forward import ForwardServer

    why = bpf_missing()
    if why:
        pytest.skip(why)
    received: list[tuple[str, dict[str, object]]] = []

    async def consumer(batch: list[tuple[str, Any, Any, Any]]) -> bool:
        received.extend((tag, rec) for tag, _t, rec, _m in batch)
        return True

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    loop = asyncio.new_event_loop()
    server = ForwardServer(consumer, host="127.0.0.1", port=port)
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)

        async def main() -> None:
            await server.start()
            ready.set()
            await server.serve_forever()

        try:
            loop.run_until_complete(main())
        except asyncio.CancelledError:
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    (tmp_path / "qtap.yaml").write_text(POLICY)
    agent = subprocess.Popen([sys.executable, "-c", RUN_AGENT, "--config",
                              str(tmp_path / "qtap.yaml"), "--sink", "forward", "--forward",
                              f"127.0.0.1:{port}", "--shape", "docker"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    curl = os.path.realpath(shutil.which("curl") or "curl")
    try:
        assert wait_attached(agent.pid), "the agent did not attach its probes in time"
        subprocess.run([curl, "-sS", "-o", "/dev/null", "--cacert", str(certs.ca),
                        f"https://127.0.0.1:{https_server.port}/agent/forwarded"], check=True)
        time.sleep(2.0)
    finally:
        agent.send_signal(signal.SIGTERM)
        _, err = agent.communicate(timeout=30)
        loop.call_soon_threadsafe(lambda: [t.cancel() for t in asyncio.all_tasks(loop)])
        thread.join(10)
    assert agent.returncode == 0, err.decode()[-2000:]
    mine = []
    for tag, rec in received:
        assert tag == "docker.qtap"
        assert set(rec) >= {"container_id", "container_name", "source", "log"}
        assert rec["source"] == "stdout"
        tx = json.loads(str(rec["log"]))
        if "/agent/forwarded" in tx["request"]["url"] and tx["metadata"]["process_exe"] == curl:
            mine.append(tx)
    assert mine, f"no record for curl's request; agent said: {err.decode()[-2000:]}"
    assert mine[0]["response"]["status"] == 200
    assert mine[0]["request"]["url"] == (
        f"https://127.0.0.1:{https_server.port}/agent/forwarded")


NO_HOST = """
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
raw = socket.create_connection(("127.0.0.1", int(sys.argv[2])))
with ctx.wrap_socket(raw, server_hostname=sys.argv[3]) as s:
    s.sendall(b"GET /agent/no-host HTTP/1.0\\r\\n\\r\\n")  # HTTP/1.0: no Host header
    got = b""
    while chunk := s.recv(4096):
        got += chunk
assert got.endswith(b"hello /agent/no-host"), got
"""


def test_agent_takes_the_sni_when_a_request_has_no_host(
        tmp_path: Path, sni_server: tuple[Server, Certs]) -> None:
    """Qtap names the endpoint by the TLS server name when the request has no Host."""
    why = bpf_missing()
    if why:
        pytest.skip(why)
    pytest.importorskip("qtap_fluent.cli.cmd_agent")
    srv, certs = sni_server
    (tmp_path / "qtap.yaml").write_text(POLICY)
    out = tmp_path / "records.jsonl"
    agent = subprocess.Popen([sys.executable, "-c", RUN_AGENT, "--config", str(tmp_path / "qtap.yaml"),
                              "--sink", "file", "--file", str(out)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_attached(agent.pid), "the agent did not attach its probes in time"
        subprocess.run([sys.executable, "-c", NO_HOST, str(certs.ca), str(srv.port), SNI_NAME],
                       check=True)
        time.sleep(2.0)  # let the agent read, pair and write the transaction
    finally:
        agent.send_signal(signal.SIGTERM)
        _, err = agent.communicate(timeout=30)
    python = os.path.realpath(sys.executable)
    mine = [r for r in records(out) if "/agent/no-host" in url_of(r)
            and r["metadata"]["process_exe"] == python  # type: ignore[index]
            and str(r["direction"]).startswith("egress")]  # the client's record (not the server's)
    assert mine, f"no record for the request; agent said: {err.decode()[-2000:]}"
    assert url_of(mine[0]) == f"https://{SNI_NAME}/agent/no-host"
