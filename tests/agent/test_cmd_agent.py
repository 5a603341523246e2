"""``qtap-fluent agent``: replay -> stdout / file / forward (real server), metrics, bad input."""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from qtap_fluent.agent.metrics import MetricsServer, prometheus_text
from qtap_fluent.agent.tracker import Counters
from qtap_fluent.cli import cmd_agent
from qtap_fluent.cli.main import main
from qtap_fluent.errors import ConfigError, QtapFluentError, UsageError
from tests.agent.pcapwrite import Pkt, pcap

CONFIG = """
stacks:
  s:
    plugins:
      - type: http_capture
        config: {level: full, format: json}
tap:
  direction: egress
  http: {stack: s}
"""
C, S = ("10.0.0.1", 40000), ("93.184.216.34", 80)
REQ = b"GET /x?api_key=k HTTP/1.1\r\nHost: example.com\r\nCookie: a=b\r\n\r\n"
RES = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path]:
    cfg = tmp_path / "qtap.yaml"
    cfg.write_text(CONFIG)
    cap = tmp_path / "cap.pcap"
    cap.write_bytes(pcap([
        Pkt(1_000, C, S, 10, 2), Pkt(2_000, S, C, 50, 18),
        Pkt(3_000_000, C, S, 11, 24, REQ), Pkt(9_000_000, S, C, 51, 24, RES),
        Pkt(10_000_000, C, S, 11 + len(REQ), 17), Pkt(11_000_000, S, C, 51 + len(RES), 17)]))
    return cfg, cap


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    cmd_agent.add_arguments(parser)
    return cmd_agent.run(parser.parse_args(list(argv)))


def test_stdout_is_qtap_json_lines_with_redaction(files: tuple[Path, Path],
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    cfg, cap = files
    assert run("--config", str(cfg), "--replay", str(cap), "--sink", "stdout") == 0
    out, err = capfd.readouterr()
    [line] = out.splitlines()
    rec = json.loads(line)
    assert rec["request"]["url"] == "http://example.com/x?api_key=[REDACTED]"
    assert rec["request"]["headers"]["Cookie"] == "[REDACTED]"
    assert rec["duration_ms"] == 6 and rec["direction"] == "egress-external"
    assert "transactions_emitted=1" in err


def test_file_sink_and_no_redact(files: tuple[Path, Path], tmp_path: Path) -> None:
    cfg, cap = files
    out = tmp_path / "out" / "r.jsonl"
    out.parent.mkdir()
    assert run("--config", str(cfg), "--replay", str(cap), "--sink", "file", "--file", str(out),
               "--no-redact") == 0
    rec = json.loads(out.read_text())
    assert rec["request"]["headers"]["Cookie"] == "a=b"


@contextmanager
def forward_server() -> Iterator[tuple[int, list[Any]]]:
    from qtap_fluent.fluentbit.forward.server import ForwardServer

    got: list[Any] = []
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def consumer(batch: list[Any]) -> bool:
        got.extend(batch)
        return True

    async def main_() -> None:
        server = ForwardServer(consumer, host="127.0.0.1", port=0)
        await server.start()
        box["port"] = server.address[1]
        box["stop"] = asyncio.Event()
        box["loop"] = asyncio.get_running_loop()
        ready.set()
        await box["stop"].wait()
        await server.close()

    t = threading.Thread(target=asyncio.run, args=(main_(),), daemon=True)
    t.start()
    assert ready.wait(10)
    try:
        yield box["port"], got
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        t.join(10)


@pytest.mark.parametrize("shape", ["docker", "structured"])
def test_forward_sink_shapes(files: tuple[Path, Path], shape: str) -> None:
    cfg, cap = files
    with forward_server() as (port, got):
        assert run("--config", str(cfg), "--replay", str(cap), "--forward", f"127.0.0.1:{port}",
                   "--shape", shape, "--tag", "docker.qtap") == 0
    [entry] = got
    tag, _time, record = entry[0], entry[1], entry[2]
    assert tag == "docker.qtap"
    if shape == "docker":
        assert set(record) == {"container_id", "container_name", "source", "log"}
        assert record["source"] == "stdout"
        inner = json.loads(record["log"])
    else:
        inner = record
    assert inner["request"]["url"].startswith("http://example.com/x?api_key=")
    assert inner["response"]["status"] == 200


def test_metrics_endpoint_serves_counters() -> None:
    counters = Counters(transactions_emitted=3, connections_desynchronised=1)
    server = MetricsServer("127.0.0.1:0", lambda: prometheus_text(counters, 2))
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics").read().decode()
    finally:
        server.close()
    assert "qtap_fluent_agent_transactions_emitted_total 3" in body
    assert "qtap_fluent_agent_connections_desynchronised_total 1" in body
    assert "qtap_fluent_agent_open_connections 2" in body


def test_bad_inputs_are_clear_errors(files: tuple[Path, Path], tmp_path: Path) -> None:
    cfg, cap = files
    with pytest.raises(ConfigError):
        run("--config", str(tmp_path / "missing.yaml"), "--replay", str(cap))
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    with pytest.raises(QtapFluentError, match="junk.pcap: not a pcap"):
        run("--config", str(cfg), "--replay", str(junk), "--sink", "stdout")
    with pytest.raises(UsageError, match="--file"):
        run("--config", str(cfg), "--replay", str(cap), "--sink", "file")
    with pytest.raises(UsageError, match="HOST:PORT"):
        run("--config", str(cfg), "--replay", str(cap), "--forward", "nonsense")
    with pytest.raises(UsageError, match="metrics"):
        run("--config", str(cfg), "--replay", str(cap), "--sink", "stdout",
            "--metrics-listen", "bad")


def test_through_the_dispatcher_when_registered(files: tuple[Path, Path],
                                                capfd: pytest.CaptureFixture[str]) -> None:
    from qtap_fluent.cli import main as main_mod

    if "agent" not in main_mod.COMMANDS:
        pytest.skip("the lead registers 'agent' in cli/main.py COMMANDS")
    cfg, cap = files
    junk = Path(str(cap) + ".bad")
    junk.write_bytes(b"xx")
    assert main(["agent", "--config", str(cfg), "--replay", str(junk), "--sink", "stdout"]) == 1
    assert "not a pcap" in capfd.readouterr().err
