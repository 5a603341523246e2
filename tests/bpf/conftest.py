"""Fixtures for the eBPF tests: real servers in their own processes, one loaded BpfSource.

System tests are marked ``bpf`` and skip, naming what is missing, when the host cannot run
them (not root, no bcc, no headers, tracefs not mounted: ``scripts/setup-ebpf.sh`` fixes it).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from qtap_fluent.agent.events import DataEvent, SourceEvent

SERVERS = Path(__file__).with_name("servers.py")


def bpf_missing() -> str | None:
    """Why the system tests cannot run here, or None."""
    from qtap_fluent.agent.bpf import env

    missing = env.check()
    try:
        import bcc  # noqa: F401
    except ImportError:
        missing.append(env.BCC_MISSING)
    return "; ".join(str(m) for m in missing) or None


@dataclass
class Certs:
    ca: Path
    cert: Path
    key: Path


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    trustme = pytest.importorskip("trustme")
    d = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    out = Certs(ca=d / "ca.pem", cert=d / "cert.pem", key=d / "key.pem")
    ca.cert_pem.write_to_path(str(out.ca))
    leaf.cert_chain_pems[0].write_to_path(str(out.cert))
    leaf.private_key_pem.write_to_path(str(out.key))
    return out


def start_server(*extra: str) -> Server:
    proc = subprocess.Popen([sys.executable, str(SERVERS), *extra], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError("test server did not start")
    return Server(proc=proc, port=int(line))


@pytest.fixture(scope="module")
def https_server(certs: Certs) -> Iterator[Server]:
    srv = start_server("--tls", str(certs.cert), str(certs.key))
    yield srv
    srv.proc.kill()
    srv.proc.wait()


SNI_NAME = "sni.qtap-fluent.test"


@pytest.fixture(scope="module")
def sni_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Certs]]:
    """An HTTPS server whose certificate is for a DNS name only (clients must send it)."""
    trustme = pytest.importorskip("trustme")
    d = tmp_path_factory.mktemp("sni")
    ca = trustme.CA()
    leaf = ca.issue_cert(SNI_NAME)
    certs = Certs(ca=d / "ca.pem", cert=d / "cert.pem", key=d / "key.pem")
    ca.cert_pem.write_to_path(str(certs.ca))
    leaf.cert_chain_pems[0].write_to_path(str(certs.cert))
    leaf.private_key_pem.write_to_path(str(certs.key))
    srv = start_server("--tls", str(certs.cert), str(certs.key))
    yield srv, certs
    srv.proc.kill()
    srv.proc.wait()


@pytest.fixture(scope="module")
def http_server() -> Iterator[Server]:
    srv = start_server()
    yield srv
    srv.proc.kill()
    srv.proc.wait()


def collect(poll: Callable[[int], list[SourceEvent]], done: Callable[[list[SourceEvent]], bool],
            timeout: float = 10.0) -> list[SourceEvent]:
    """Poll until ``done(events)`` or ``timeout`` seconds passed (bounded wait, no sleeps)."""
    events: list[SourceEvent] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events.extend(poll(100))
        if done(events):
            break
    return events


def joined(events: list[SourceEvent], pid: int, outbound: bool) -> bytes:
    """All bytes one process moved in one direction, in order."""
    return b"".join(e.data for e in events if isinstance(e, DataEvent) and e.pid == pid
                    and (e.direction.value == "outbound") == outbound)
