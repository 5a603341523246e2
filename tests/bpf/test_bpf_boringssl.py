"""BoringSSL under the eBPF source: a real ``bssl client`` against the local HTTPS servers.

Debian ships BoringSSL as Android's build (``apt-get install -y android-libboringssl
android-boringssl``): ``/usr/lib/<arch>-linux-gnu/android/libssl.so.0``, found by its users
through RUNPATH (not in ld.so's cache), and the ``bssl-tool`` binary. The unit tests at the top
run anywhere; the system tests are marked ``bpf`` and skip, naming the package, without it.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from qtap_fluent.agent.bpf import discover, libs
from qtap_fluent.agent.bpf.loader import BpfOptions, BpfSource
from qtap_fluent.agent.events import CloseEvent, DataEvent, Origin, SourceEvent

from .conftest import SNI_NAME, Certs, Server, bpf_missing, collect, joined

ANDROID_LIBSSL = Path(f"/usr/lib/{platform.machine()}-linux-gnu/android/libssl.so.0")
#: Debian names the tool bssl-tool; upstream builds name it bssl.
BSSL = shutil.which("bssl-tool") or shutil.which("bssl")
NO_BSSL = "bssl missing (apt-get install -y android-libboringssl android-boringssl)"


# ---- unit: classification and discovery (no BPF needed) ---------------------------------------

@pytest.mark.parametrize(("symbols", "kind"), [
    # Android's libssl: no OPENSSL_is_boringssl (that lives in libcrypto, when at all).
    ({"SSL_write", "SSL_read", "SSL_CTX_set_custom_verify"}, "boringssl"),
    ({"SSL_write", "SSL_read", "OPENSSL_is_boringssl"}, "boringssl"),
    ({"SSL_write", "SSL_read", "SSL_set_tlsext_host_name"}, "openssl"),
    ({"SSL_CTX_set_custom_verify"}, None),
])
def test_boringssl_is_told_by_any_of_its_markers(symbols: set[str], kind: str | None) -> None:
    lib = libs.classify(symbols)
    assert (lib.kind if lib else None) == kind


def test_markers_are_among_the_symbols_the_elf_reader_looks_for() -> None:
    assert {"OPENSSL_is_boringssl", "SSL_CTX_set_custom_verify"} <= libs.ALL_SYMBOLS


def test_runpath_directories_are_looked_through(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "libssl.so.0").write_bytes(b"")
    (tmp_path / "libfoo.so.0").write_bytes(b"")
    monkeypatch.setattr(discover, "_RUNPATH_DIRS", (str(tmp_path), str(tmp_path / "nope")))
    found = discover.system_libraries()
    assert str(tmp_path / "libssl.so.0") in found
    assert str(tmp_path / "libfoo.so.0") not in found


@pytest.mark.skipif(not ANDROID_LIBSSL.exists(), reason=NO_BSSL)
def test_debians_android_libssl_is_found_as_boringssl() -> None:
    assert str(ANDROID_LIBSSL) in discover.system_libraries()
    target = discover.identify(str(ANDROID_LIBSSL))
    assert target is not None and target.library.kind == "boringssl"
    assert {"SSL_write", "SSL_read", "SSL_set_tlsext_host_name"} <= target.symbols
    points = libs.attach_points(ANDROID_LIBSSL, target.library, target.symbols)
    assert {p.symbol for p in points} >= {"SSL_write", "SSL_read", "SSL_set_tlsext_host_name"}
    assert all(p.symbol is not None for p in points)  # no inner probes on BoringSSL's row


# ---- system: real bssl client, real probes ------------------------------------------------------

@pytest.fixture(scope="module")
def source(https_server: Server, sni_server: tuple[Server, Certs]) -> Iterator[BpfSource]:
    if BSSL is None:
        pytest.skip(NO_BSSL)
    why = bpf_missing()
    if why:
        pytest.skip(why)
    # Only this process (and the clients it starts) and the servers: the machine is shared.
    mine = frozenset({os.getpid(), https_server.proc.pid, sni_server[0].proc.pid})
    src = BpfSource(BpfOptions(ignore_loopback=False, scan_processes=False, only_pids=mine))
    attached = src.start()
    try:
        # Attached at start as a system library: a short-lived client needs no process scan.
        assert ("boringssl", str(ANDROID_LIBSSL)) in attached.libraries, attached.libraries
        yield src
    finally:
        src.close()


def bssl_get(port: int, path: str, ca: Path, host: str, *extra: str) -> int:
    """``bssl client`` sends one GET (Connection: close) read from stdin; returns its pid.

    bssl copies stdin to the connection until EOF and then keeps printing what it reads until
    the server closes, so the full response arrives before it exits.
    """
    assert BSSL is not None
    req = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    proc = subprocess.Popen([BSSL, "client", "-connect", f"127.0.0.1:{port}",
                             "-root-certs", str(ca), *extra],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    out, err = proc.communicate(req, timeout=30)
    assert proc.returncode == 0, err.decode(errors="replace")
    assert f"hello {path}".encode() in out  # the client really got the answer
    return proc.pid


def client_data(evs: list[SourceEvent], pid: int) -> list[DataEvent]:
    return [e for e in evs if isinstance(e, DataEvent) and e.pid == pid]


@pytest.mark.bpf
def test_bssl_client_request_and_response(source: BpfSource, https_server: Server,
                                          certs: Certs) -> None:
    source.drain(50)
    pid = bssl_get(https_server.port, "/via-bssl", certs.ca, "127.0.0.1")
    spid = https_server.proc.pid
    evs = collect(source.poll, lambda es: b"hello /via-bssl" in joined(es, pid, False)
                  and b"hello /via-bssl" in joined(es, spid, True)
                  and any(isinstance(e, CloseEvent) and e.pid == pid for e in es))
    assert joined(evs, pid, True) == (b"GET /via-bssl HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                      b"Connection: close\r\n\r\n")
    got = joined(evs, pid, False)
    assert got.startswith(b"HTTP/1.1 200 OK\r\n") and got.endswith(b"\r\n\r\nhello /via-bssl")
    mine = client_data(evs, pid)
    assert mine
    for e in mine:
        assert e.exe == os.path.realpath(BSSL or "")  # bssl had exited: taken at exec
        assert e.tls is True
        assert e.origin is Origin.CONNECT
        assert e.remote is not None and e.remote.ip == "127.0.0.1"
        assert e.remote.port == https_server.port
        assert e.local is not None and e.local.port > 0
        assert e.sni is None  # no -server-name: bssl sends none
    assert len({e.conn_id for e in mine}) == 1
    assert any(isinstance(e, CloseEvent) and e.conn_id == mine[0].conn_id for e in evs)
    # The server's side of the same connection (CPython's ssl on the system OpenSSL).
    assert joined(evs, spid, False).startswith(b"GET /via-bssl HTTP/1.1\r\n")
    assert joined(evs, spid, True).startswith(b"HTTP/1.1 200 OK\r\n")
    s = next(e for e in client_data(evs, spid) if e.remote == mine[0].local)
    assert s.local == mine[0].remote


@pytest.mark.bpf
def test_bssl_client_server_name_is_the_sni(source: BpfSource,
                                            sni_server: tuple[Server, Certs]) -> None:
    srv, certs = sni_server
    source.drain(50)
    pid = bssl_get(srv.port, "/bssl-named", certs.ca, SNI_NAME, "-server-name", SNI_NAME)
    evs = collect(source.poll, lambda es: b"hello /bssl-named" in joined(es, pid, False))
    assert joined(evs, pid, True).startswith(b"GET /bssl-named HTTP/1.1\r\nHost: "
                                             + SNI_NAME.encode())
    mine = client_data(evs, pid)
    assert mine and {e.sni for e in mine} == {SNI_NAME}
    assert {e.exe for e in mine} == {os.path.realpath(BSSL or "")}
