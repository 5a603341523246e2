"""Interop with real peers: fluent-logger, our client in every configuration, Fluent Bit.

The Fluent Bit tests run only when a ``fluent-bit`` binary is on PATH (skipped otherwise).
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fluent import sender as fluent_sender

from qtap_fluent.fluentbit.forward.client import ForwardClient, tls_context
from qtap_fluent.fluentbit.forward.events import EventTime
from qtap_fluent.fluentbit.forward.handshake import ClientAuth, ServerAuth

from .conftest import ServerThread, free_port


@pytest.mark.parametrize("nanosecond", [False, True])
def test_fluent_logger_message_mode(server: ServerThread, nanosecond: bool) -> None:
    logger = fluent_sender.FluentSender("app", host=server.host, port=server.port,
                                        nanosecond_precision=nanosecond)
    for i in range(50):
        # fluent-logger's emit() uses int(time.time()) without nanosecond_precision
        t = 1700000000 + i * 0.25 if nanosecond else 1700000000 + i
        assert logger.emit_with_time("access", t, {"i": i, "path": "/x"})
    logger.close()
    entries = server.wait_for(50)
    assert [(tag, rec["i"]) for tag, _, rec, _ in entries] == [("app.access", i)
                                                              for i in range(50)]
    times = [t for _, t, _, _ in entries]
    if nanosecond:  # EventTime keeps the fraction
        assert times[1] == EventTime(1700000000, 250_000_000)
    else:  # integer seconds on the wire
        assert times[1] == EventTime(1700000001, 0)


CONFIGS: dict[str, dict[str, Any]] = {
    "plain": {},
    "no_ack": {"require_ack": False},
    "gzip": {"compress": "gzip"},
    "zstd": {"compress": "zstd"},
    "tls": {"tls": True},
    "tls_gzip_auth": {"tls": True, "compress": "gzip", "auth": True},
    "shared_key_users": {"auth": True},
    "unix": {"unix": True},
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_our_client_to_our_server(
    name: str,
    make_server: Callable[..., ServerThread],
    server_ssl: ssl.SSLContext,
    client_ssl: ssl.SSLContext,
) -> None:
    cfg = dict(CONFIGS[name])
    server_kw: dict[str, Any] = {}
    client_kw: dict[str, Any] = {"batch_records": 100, "batch_age": 0.05}
    tmp = tempfile.mkdtemp()
    if cfg.pop("tls", False):
        server_kw["ssl"] = server_ssl
        client_kw["ssl_context"] = client_ssl
    if cfg.pop("auth", False):
        server_kw["auth"] = ServerAuth(shared_key="s3cret", users={"agent": "pw"})
        client_kw["auth"] = ClientAuth(shared_key="s3cret", username="agent", password="pw")
    if cfg.pop("unix", False):
        server_kw["unix_path"] = os.path.join(tmp, "fw.sock")
        client_kw["unix_path"] = server_kw["unix_path"]
    client_kw.update(cfg)
    srv = make_server(**server_kw)
    host, port = ("127.0.0.1", 0) if "unix_path" in server_kw else (srv.host, srv.port)
    with ForwardClient(host, port, **client_kw) as client:
        for i in range(1000):
            client.emit("qtap.http", {"i": i, "body": "b" * (i % 50)})
        assert client.flush(20)
    entries = srv.wait_for(1000)
    assert sorted(rec["i"] for _, _, rec, _ in entries) == list(range(1000))
    assert srv.server.stats.acks == (0 if name == "no_ack" else client.stats.acked_chunks)
    shutil.rmtree(tmp)


def test_tls_verification_failure_never_sends(
    make_server: Callable[..., ServerThread], server_ssl: ssl.SSLContext, ca: Any
) -> None:
    srv = make_server(ssl=server_ssl)
    untrusting = tls_context()  # system CAs only: the test CA is unknown
    client = ForwardClient(srv.host, srv.port, ssl_context=untrusting, backoff_max=0.05)
    client.emit("t", {"i": 1})
    assert client.close(timeout=0.5) is False
    assert client.stats.connect_failures >= 1 and srv.entries == []
    # verify=False (Fluent Bit's tls.verify off) connects to the same server
    with ForwardClient(srv.host, srv.port, ssl_context=tls_context(verify=False)) as insecure:
        insecure.emit("t", {"i": 2})
        assert insecure.flush(10)
    assert [rec["i"] for _, _, rec, _ in srv.entries] == [2]


def test_wrong_shared_key_is_never_ready(make_server: Callable[..., ServerThread]) -> None:
    srv = make_server(auth=ServerAuth(shared_key="right"))
    client = ForwardClient(srv.host, srv.port, auth=ClientAuth(shared_key="wrong"),
                           backoff_max=0.05)
    client.emit("t", {"i": 1})
    assert client.close(timeout=0.5) is False
    assert client.stats.connect_failures >= 1
    assert srv.entries == []
    assert srv.server.stats.auth_failures >= 1


# ---------------------------------------------------------------- Fluent Bit (optional)

FLUENT_BIT = shutil.which("fluent-bit")
needs_fluent_bit = pytest.mark.skipif(FLUENT_BIT is None, reason="no fluent-bit on PATH")


@pytest.fixture
def fluent_bit(tmp_path: Path) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(conf: str) -> subprocess.Popen[bytes]:
        path = tmp_path / f"fb{len(procs)}.conf"
        path.write_text(conf)
        assert FLUENT_BIT is not None
        proc = subprocess.Popen([FLUENT_BIT, "-c", str(path)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


FB_INPUTS: dict[str, tuple[str, dict[str, Any]]] = {
    "acks": ("", {}),
    "shared_key_users_gzip": ("    Shared_Key k\n    Security.Users agent pw\n",
                              {"auth": ClientAuth(shared_key="k", username="agent",
                                                  password="pw"), "compress": "gzip"}),
    "zstd": ("", {"compress": "zstd"}),
}


@pytest.mark.fluentbit
@needs_fluent_bit
@pytest.mark.parametrize("name", sorted(FB_INPUTS))
def test_our_client_to_fluent_bit_with_acks(
    name: str, fluent_bit: Callable[[str], subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    extra, client_kw = FB_INPUTS[name]
    port = free_port()
    out = tmp_path / "out"
    out.mkdir()
    fluent_bit(f"""[SERVICE]
    Flush 0.2
    Log_Level warn
[INPUT]
    Name forward
    Listen 127.0.0.1
    Port {port}
{extra}[OUTPUT]
    Name file
    Match *
    Path {out}
    File got
    Format plain
""")
    with ForwardClient("127.0.0.1", port, backoff_max=0.2, **client_kw) as client:
        for i in range(2000):
            client.emit("qtap", {"i": i})
        assert client.flush(30)  # every chunk acknowledged by Fluent Bit
        assert client.stats.acked_records == 2000
    lines: list[str] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = (out / "got").read_text().splitlines() if (out / "got").exists() else []
        if len(lines) >= 2000:
            break
        time.sleep(0.2)
    assert sorted(json.loads(line)["i"] for line in lines) == list(range(2000))


@pytest.mark.fluentbit
@needs_fluent_bit
@pytest.mark.parametrize("extra", [
    "",
    "    Compress gzip\n",
    "    Shared_Key k\n    Self_Hostname fb\n",
    "    Require_ack_response On\n",
    "    Require_ack_response On\n    Compress gzip\n    Shared_Key k\n",
    "    Retain_Metadata_In_Forward_Mode On\n    Require_ack_response On\n",
])
def test_fluent_bit_forward_output_to_our_server(
    extra: str, make_server: Callable[..., ServerThread],
    fluent_bit: Callable[[str], subprocess.Popen[bytes]],
) -> None:
    auth = ServerAuth(shared_key="k") if "Shared_Key" in extra else None
    srv = make_server(auth=auth)
    fluent_bit(f"""[SERVICE]
    Flush 0.2
    Log_Level warn
[INPUT]
    Name dummy
    Tag fb.dummy
    Dummy {{"msg": "hello", "n": 1}}
    Rate 200
    Samples 500
[OUTPUT]
    Name forward
    Match *
    Host 127.0.0.1
    Port {srv.port}
{extra}""")
    entries = srv.wait_for(500, timeout=30)
    assert len(entries) >= 500
    assert all(tag == "fb.dummy" and rec["msg"] == "hello" for tag, _, rec, _ in entries)
    if "Require_ack" in extra:
        assert srv.server.stats.acks > 0
