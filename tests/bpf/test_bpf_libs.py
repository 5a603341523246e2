"""The TLS library table, the ELF symbol reader, header and environment discovery."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from qtap_fluent.agent.bpf import discover, env, headers, libs
from qtap_fluent.agent.bpf.loader import BpfOptions, cflags, program_text

FAKE_SSL_C = r"""
#include <string.h>
__attribute__((noinline)) int SSL_write(void *s, const void *buf, int num) {
    __asm__ volatile("" ::: "memory"); return num; }
__attribute__((noinline)) int SSL_read(void *s, void *buf, int num) {
    __asm__ volatile("" ::: "memory"); return 0; }
int main(void) { return SSL_write((void *)0x1, "x", 1) == 1 ? 0 : 1; }
"""

needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")


def build(tmp_path: Path, source: str, name: str) -> Path:
    (tmp_path / f"{name}.c").write_text(source)
    subprocess.run(["cc", "-O1", "-o", str(tmp_path / name), str(tmp_path / f"{name}.c")],
                   check=True)
    return tmp_path / name


@needs_cc
def test_statically_linked_openssl_is_found_in_an_executable(tmp_path: Path) -> None:
    exe = build(tmp_path, FAKE_SSL_C, "static_ssl")
    assert libs.defined_functions(exe) == {"SSL_write", "SSL_read"}
    target = discover.identify(str(exe), by_name_only=False)
    assert target is not None and target.library.kind == "openssl"
    assert target.symbols == {"SSL_write", "SSL_read"}
    assert discover.identify(str(exe)) is None  # not named like a library


@needs_cc
def test_executable_without_tls_symbols_is_not_a_target(tmp_path: Path) -> None:
    exe = build(tmp_path, "int main(void) { return 0; }\n", "plain")
    assert libs.defined_functions(exe) == frozenset()
    assert discover.identify(str(exe), by_name_only=False) is None


def test_imported_symbols_do_not_count() -> None:
    import _ssl  # CPython's extension calls SSL_write but does not define it

    assert _ssl.__file__ is not None
    assert libs.defined_functions(_ssl.__file__) == frozenset()


def test_non_elf_and_missing_files_read_as_no_symbols(tmp_path: Path) -> None:
    (tmp_path / "libssl.so.3").write_bytes(b"not an ELF file at all" * 10)
    assert libs.defined_functions(tmp_path / "libssl.so.3") == frozenset()
    assert libs.defined_functions(tmp_path / "absent") == frozenset()
    (tmp_path / "trunc").write_bytes(b"\x7fELF\x02\x01" + b"\0" * 20)
    assert libs.defined_functions(tmp_path / "trunc") == frozenset()


@pytest.mark.parametrize(("symbols", "kind"), [
    ({"SSL_write", "SSL_read", "SSL_write_ex"}, "openssl"),
    ({"SSL_write", "SSL_read", "OPENSSL_is_boringssl"}, "boringssl"),
    ({"gnutls_record_send", "gnutls_record_recv"}, "gnutls"),
    ({"SSL_write"}, None),  # a required symbol is missing
    ({"PR_Write"}, None),
])
def test_classify(symbols: set[str], kind: str | None) -> None:
    lib = libs.classify(symbols)
    assert (lib.kind if lib else None) == kind


@pytest.mark.parametrize(("name", "ok"), [
    ("/usr/lib/x86_64-linux-gnu/libssl.so.3", True), ("/lib/libssl.so.1.1", True),
    ("/usr/lib/libgnutls.so.30", True), ("/usr/lib/libssl3.so", False),  # NSS
    ("/usr/lib/libgnutlsxx.so.30", False), ("/usr/bin/curl", False),
])
def test_candidate_names(name: str, ok: bool) -> None:
    assert libs.candidate_by_name(name) is ok


def test_every_probe_program_exists_in_the_c_source() -> None:
    text = program_text()
    for lib in libs.TLS_LIBRARIES:
        programs = [(p.enter, p.ret) for p in lib.probes] + [(i.enter, i.ret) for i in lib.inner]
        for enter, ret in programs:
            assert f"int {enter}(struct pt_regs *ctx)" in text
            if ret:
                assert f"int {ret}(struct pt_regs *ctx)" in text


def test_program_text_inlines_each_include_once() -> None:
    text = program_text()
    assert '#include "' not in text
    assert text.count("struct qf_data_event {") == 1
    assert text.count("BPF_PERCPU_ARRAY(qf_scratch") == 1


def test_options_become_cflags_and_bad_ones_are_reported() -> None:
    flags = cflags(BpfOptions(max_data=4096, ignore_loopback=True, direction="ingress"), True)
    assert {"-DQF_MAX_DATA=4096", "-DQF_IGNORE_LOOPBACK", "-DQF_DIRECTION=2",
            "-DQF_USE_PERFBUF"} <= set(flags)
    assert "-DQF_IGNORE_LOOPBACK" not in cflags(BpfOptions(ignore_loopback=False), False)
    bad = BpfOptions(max_data=1000, ringbuf_pages=3, direction="up").problems()
    assert len(bad) == 3 and "power of two" in bad[0] and "'up'" in bad[2]


def test_headers_found_in_order(tmp_path: Path) -> None:
    tree = tmp_path / "hdrs"
    for rel in ("include/linux/kconfig.h", "include/generated/autoconf.h"):
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text("")
    found = headers.find(env={"BCC_KERNEL_SOURCE": str(tree)}, release="0.0-none")
    assert found is not None and found.path == tree and found.found_by == "BCC_KERNEL_SOURCE"
    half = tmp_path / "half"  # -common without -amd64: no generated headers
    (half / "include/linux").mkdir(parents=True)
    (half / "include/linux/kconfig.h").write_text("")
    assert not headers.is_header_tree(half)
    found = headers.find(env={"BCC_KERNEL_SOURCE": str(half),
                              "QTAP_FLUENT_HEADERS_DIR": str(tree)}, release="0.0-none")
    assert found is not None and found.found_by == "QTAP_FLUENT_HEADERS_DIR"


def test_environment_check_names_each_missing_piece_and_its_fix(tmp_path: Path) -> None:
    missing = env.check(root=tmp_path)  # an empty tree: no tracefs, BTF or uprobes
    text = str(env.BpfUnavailable(missing))
    assert "tracefs is not mounted" in text and "mount -t tracefs" in text
    assert "kernel BTF" in text and "CONFIG_DEBUG_INFO_BTF" in text
    assert "uprobes" in text and "CONFIG_UPROBE_EVENTS" in text
    if os.geteuid() != 0:
        assert "root privileges" in text
    for rel in ("sys/kernel/tracing/events", "sys/kernel/btf", "sys/bus/event_source/devices/uprobe"):
        (tmp_path / rel).mkdir(parents=True)
    (tmp_path / "sys/kernel/btf/vmlinux").write_text("")
    pieces = " ".join(m.piece for m in env.check(root=tmp_path))
    assert "tracefs" not in pieces and "BTF" not in pieces and "uprobes" not in pieces
    assert "pip install bcc" in env.BCC_MISSING.fix  # says what NOT to do, too


def test_maps_of_this_process_list_its_libraries() -> None:
    import ssl  # noqa: F401  (maps libssl into this process)

    paths = list(discover.mapped_files(os.getpid()))
    assert any("libssl.so" in p for p in paths) or any("_ssl" in p for p in paths)
    assert all(p.startswith(f"/proc/{os.getpid()}/root/") for p in paths)
    assert discover.exe(os.getpid()) == os.path.realpath(f"/proc/{os.getpid()}/exe")
    assert discover.exe(2 ** 22 + 12345) is None


def test_proc_net_tcp_addresses() -> None:
    from qtap_fluent.agent.events import Address

    assert discover._proc_net_address("0100007F:1F90") == Address(ip="127.0.0.1", port=8080)
    v6 = "00000000000000000000000001000000:01BB"  # ::1, words in host (little-endian) order
    assert discover._proc_net_address(v6) == Address(ip="::1", port=443)
    mapped = "0000000000000000FFFF00000100007F:0050"  # ::ffff:127.0.0.1
    assert discover._proc_net_address(mapped) == Address(ip="127.0.0.1", port=80)


def test_established_sockets_of_this_process() -> None:
    import socket

    srv = socket.create_server(("127.0.0.1", 0))
    cli = socket.create_connection(srv.getsockname())
    acc, _ = srv.accept()
    try:
        found = {s.fd: s for s in discover.established_sockets([os.getpid()])}
        c = found[cli.fileno()]
        assert (c.local.ip, c.local.port) == cli.getsockname()
        assert (c.remote.ip, c.remote.port) == cli.getpeername()
        assert found[acc.fileno()].remote == c.local
        assert srv.fileno() not in found  # listening, not established
    finally:
        for s in (cli, acc, srv):
            s.close()


def test_missing_bcc_stops_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from qtap_fluent.agent.bpf import loader
    from qtap_fluent.errors import QtapFluentError

    monkeypatch.setattr(loader.env, "check", list)  # type: ignore[attr-defined]  # pretend the host is fine
    monkeypatch.setitem(sys.modules, "bcc", None)  # ... but bcc cannot be imported
    with pytest.raises(QtapFluentError) as info:
        loader.BpfSource().start()
    assert isinstance(info.value, env.BpfUnavailable)
    assert "python3-bpfcc" in str(info.value) and "setup-ebpf.sh" in str(info.value)


def test_not_root_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    pieces = [m.piece for m in env.check()]
    assert any("root privileges" in p for p in pieces)


def test_bad_options_are_refused_before_anything_loads() -> None:
    from qtap_fluent.agent.bpf.loader import BpfSource
    from qtap_fluent.errors import ConfigError

    with pytest.raises(ConfigError, match="max_chunks must be 1..32"):
        BpfSource(BpfOptions(max_chunks=0))
    with pytest.raises(ConfigError, match="max_iov \\* max_iov_chunks <= 64"):
        BpfSource(BpfOptions(max_iov=16, max_iov_chunks=5, max_chunks=4))


@pytest.mark.parametrize(("code", "callee"), [
    # OpenSSL 3.0 SSL_write_ex: sub $8,%rsp; call ssl_write_internal
    (bytes.fromhex("4883ec08e887fbffff31d2"), 0x35A10 + 9 - 0x479),
    (bytes.fromhex("f30f1efa4883ec08e810000000"), 0x35A10 + 13 + 0x10),  # with endbr64
    (bytes.fromhex("e9f0ffffff"), 0x35A10 + 5 - 0x10),  # a tail call
    (bytes.fromhex("4883ec18648b0425"), None),  # SSL_write: stack protector first
    (bytes.fromhex("4883ec08e9000000"), None),  # sub then jmp: not the wrapper shape
    (bytes.fromhex("4883ec08e8"), None),  # cut short
])
def test_thin_wrapper_callee(code: bytes, callee: int | None) -> None:
    assert libs.thin_wrapper_callee(code, 0x35A10) == callee


def test_system_openssl_is_probed_at_its_internal_functions() -> None:
    """Where the host's libssl has the 1.1.1-3.1 wrappers, SSL_read/SSL_write and their _ex
    forms are replaced by two probes on the internal functions they share."""
    paths = [p for p in discover.system_libraries() if "libssl.so" in p]
    target = next((t for t in map(discover.identify, paths)
                   if t is not None and t.library.kind == "openssl"), None)
    if target is None or "SSL_write_ex" not in target.symbols:
        pytest.skip("no OpenSSL 1.1.1+ libssl on this host")
    points = libs.attach_points(target.path, target.library, target.symbols)
    symbols = {p.symbol for p in points}
    exported = libs.attach_points(target.path, target.library, target.symbols, inner=False)
    assert {"SSL_write", "SSL_read", "SSL_write_ex", "SSL_read_ex"} <= {p.symbol
                                                                        for p in exported}
    if "SSL_write_ex2" in target.symbols:  # OpenSSL 3.2+: ssl_write_internal has a flags arg
        assert "SSL_write" in symbols and "SSL_write_ex" in symbols
        return
    inner = [p for p in points if p.addr is not None]
    assert {p.enter for p in inner} == {"qf_ossl_write_ex_enter", "qf_ossl_read_ex_enter"}
    assert not symbols & {"SSL_write", "SSL_read", "SSL_write_ex", "SSL_read_ex"}
    addrs = libs.function_addresses(target.path, frozenset({"SSL_write_ex", "SSL_read_ex"}))
    assert all(p.addr not in addrs.values() for p in inner)
    assert {"SSL_do_handshake", "SSL_set_fd", "SSL_ctrl"} <= symbols


def test_code_at_reads_text_and_refuses_other_places(tmp_path: Path) -> None:
    exe = build(tmp_path, FAKE_SSL_C, "static_ssl") if shutil.which("cc") else None
    if exe is None:
        pytest.skip("no C compiler")
    addr = libs.function_addresses(exe)["SSL_write"]
    code = libs.code_at(exe, addr, 4)
    assert code is not None and len(code) == 4
    assert libs.code_at(exe, 0, 4) is None  # not in any executable section
    assert libs.code_at(tmp_path / "absent", addr, 4) is None


WRAPS_EXPORTED_C = r"""
/* Like LibreSSL: SSL_write_ex is a wrapper over the exported SSL_write, whose arguments differ
 * from what the internal-function probes expect: it must be probed as exported symbols. */
__attribute__((noinline)) int SSL_write(void *s, const void *buf, int num) {
    __asm__ volatile("" ::: "memory"); return num; }
__attribute__((noinline)) int SSL_read(void *s, void *buf, int num) {
    __asm__ volatile("" ::: "memory"); return 0; }
/* exactly OpenSSL 3.0's wrapper shape: sub $8,%rsp; call <callee> */
__attribute__((naked)) int SSL_write_ex(void *s, const void *buf, unsigned long n,
                                        unsigned long *w) {
    __asm__ volatile("sub $8, %rsp\n call SSL_write\n add $8, %rsp\n ret"); }
int main(void) { unsigned long w; return SSL_write_ex((void *)0x1, "x", 1, &w) == 1 ? 0 : 1; }
"""


@needs_cc
def test_a_wrapper_over_another_exported_function_is_not_taken_for_the_internal_one(
        tmp_path: Path) -> None:
    exe = build(tmp_path, WRAPS_EXPORTED_C, "wraps_exported")
    target = discover.identify(str(exe), by_name_only=False)
    assert target is not None and target.library.kind == "openssl"
    addrs = libs.function_addresses(exe)
    code = libs.code_at(exe, addrs["SSL_write_ex"], 16)
    assert code is not None
    callee = libs.thin_wrapper_callee(code, addrs["SSL_write_ex"])
    points = libs.attach_points(exe, target.library, target.symbols)
    assert callee == addrs["SSL_write"]  # recognised as a thin wrapper...
    assert all(p.addr is None for p in points)  # ... and refused: its callee is exported
    assert {"SSL_write", "SSL_read", "SSL_write_ex"} <= {p.symbol for p in points}
