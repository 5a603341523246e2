"""Real traffic: tcpdump records curl and Python clients talking HTTP/1.1 and h2c on 127.0.0.1;
the replay of that capture through ``qtap-fluent agent`` gives the expected records."""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from qtap_fluent.cli import cmd_agent

pytest.importorskip("h2", reason="the h2c test server and client need the h2 package (test extra)")
from tests.agent.servers import h2c_client, h2c_server, http1_server

pytestmark = pytest.mark.skipif(
    shutil.which("tcpdump") is None or shutil.which("curl") is None or os.geteuid() != 0,
    reason="needs tcpdump (Debian package), curl and root")

CONFIG = """
stacks:
  all:
    plugins:
      - type: http_capture
        config: {level: full, format: json}
tap:
  direction: all
  http: {stack: all}
"""


@contextmanager
def tcpdump(path: Path, ports: list[int], iface: str = "lo") -> Iterator[None]:
    expr = " or ".join(f"tcp port {p}" for p in ports)
    proc = subprocess.Popen(["tcpdump", "-i", iface, "-U", "--immediate-mode", "-n", "-w", str(path), expr],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        lines: list[str] = []
        while not any("listening" in x for x in lines) and len(lines) < 5:
            lines.append(proc.stderr.readline().decode())  # "listening on ..." once it is live
        assert "listening" in lines[-1], lines
        yield
        time.sleep(0.3)  # let the last packets reach the capture
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def replay(tmp_path: Path, capture: Path) -> list[dict[str, Any]]:
    cfg = tmp_path / "qtap.yaml"
    cfg.write_text(CONFIG)
    out = tmp_path / "records.jsonl"
    parser = argparse.ArgumentParser()
    cmd_agent.add_arguments(parser)
    args = parser.parse_args(["--config", str(cfg), "--replay", str(capture), "--sink", "file",
                              "--file", str(out), "--no-redact"])
    assert cmd_agent.run(args) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def body(rec: dict[str, Any], side: str) -> bytes:
    return base64.b64decode(rec[side].get("body", ""))


def test_http1_curl_and_python(tmp_path: Path) -> None:
    cap = tmp_path / "h1.pcap"
    with http1_server() as port, tcpdump(cap, [port]):
        base = f"http://127.0.0.1:{port}"
        subprocess.run(["curl", "-sS", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
                        f"{base}/first", f"{base}/gzip?x=1", f"{base}/chunked"], check=True)
        subprocess.run(["curl", "-sS", "-I", "-o", "/dev/null", f"{base}/head"], check=True)
        c = http.client.HTTPConnection("127.0.0.1", port)
        c.request("POST", "/post", body=b'{"a":1}', headers={"Content-Type": "application/json"})
        c.getresponse().read()
        c.request("GET", "/missing")
        c.getresponse().read()
        c.close()
    recs = replay(tmp_path, cap)
    by_path = {r["request"]["path"]: r for r in recs}
    assert sorted(by_path) == ["/chunked", "/first", "/gzip", "/head", "/missing", "/post"]
    assert body(by_path["/first"], "response") == b'{"path":"/first"}'
    assert body(by_path["/gzip"], "response") == b'{"path":"/gzip?x=1"}'  # decoded
    assert by_path["/gzip"]["request"]["url"] == f"http://127.0.0.1:{port}/gzip?x=1"
    assert body(by_path["/chunked"], "response") == b'{"path":"/chunked"}'
    assert by_path["/head"]["request"]["method"] == "HEAD"
    assert "body" not in by_path["/head"]["response"]
    assert body(by_path["/post"], "request") == b'{"a":1}'
    assert body(by_path["/post"], "response") == b'{"echo":{"a":1}}'
    assert by_path["/missing"]["response"]["status"] == 404
    assert by_path["/first"]["request"]["user_agent"].startswith("curl/")
    assert by_path["/post"]["request"]["headers"]["Accept-Encoding"] == "identity"  # http.client
    assert by_path["/post"]["request"]["content_type"] == "application/json"
    for r in recs:
        assert r["direction"] == "egress-external"  # loopback is not "private" (Go IsPrivate)
        assert r["request"]["protocol"] == "http1"
        assert r["metadata"]["bytes_sent"] > 0 and r["metadata"]["bytes_received"] > 0
    # keep-alive: curl's three URLs share one connection, http.client's two another
    assert by_path["/first"]["metadata"]["connection_id"] == \
        by_path["/chunked"]["metadata"]["connection_id"]
    assert by_path["/post"]["metadata"]["connection_id"] == \
        by_path["/missing"]["metadata"]["connection_id"]


def test_h2c_curl_and_python_multiplexed(tmp_path: Path) -> None:
    # On "lo" (tcpdump -i any lost loopback segments here; SLL2 is covered by test_replay).
    cap = tmp_path / "h2.pcap"
    with h2c_server() as port, tcpdump(cap, [port]):
        base = f"http://127.0.0.1:{port}"
        subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null",
                        f"{base}/one"], check=True)
        subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null",
                        "--data-binary", "hello", f"{base}/upload"], check=True)
        got = h2c_client(port, [("GET", "/two?q=2", b""), ("POST", "/m1", b"x" * 100),
                                ("GET", "/m2", b"")])
        assert len(got) == 3
        up = subprocess.run(["curl", "-sS", "--http2", f"{base}/upgraded"], check=True,
                            capture_output=True)
        assert up.stdout == b'{"h2":"/upgraded","got":0}'
    recs = replay(tmp_path, cap)
    by_path = {r["request"]["path"]: r for r in recs}
    assert sorted(by_path) == ["/m1", "/m2", "/one", "/two", "/upgraded", "/upload"]
    assert body(by_path["/upgraded"], "response") == b'{"h2":"/upgraded","got":0}'
    assert by_path["/upgraded"]["request"]["headers"]["Upgrade"] == "h2c"
    assert body(by_path["/m1"], "request") == b"x" * 100
    assert body(by_path["/m1"], "response") == b'{"h2":"/m1","got":100}'
    assert by_path["/m2"]["request"]["user_agent"] == "python-h2"
    assert by_path["/m1"]["metadata"]["connection_id"] == \
        by_path["/m2"]["metadata"]["connection_id"]
    assert body(by_path["/one"], "response") == b'{"h2":"/one","got":0}'
    assert body(by_path["/two"], "response") == b'{"h2":"/two?q=2","got":0}'
    assert body(by_path["/upload"], "request") == b"hello"
    assert body(by_path["/upload"], "response") == b'{"h2":"/upload","got":5}'
    for r in recs:
        assert r["request"]["protocol"] == "http2" and r["response"]["status"] == 200
        assert r["request"]["headers"][":authority"] == f"127.0.0.1:{port}"
