"""decode.py mirrors events.h: checked against a C compiler, round-trips, and bad input."""

from __future__ import annotations

import shutil
import subprocess
from importlib.resources import files
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qtap_fluent.agent.bpf import decode as d

LAYOUT_C = r"""
#include <linux/types.h>
#include <stddef.h>
#include <stdio.h>
#include "events.h"
#define P(x) printf("%s %zu\n", #x, (size_t)(x))
int main(void) {
    P(sizeof(struct qf_hdr));
    P(offsetof(struct qf_data_event, sock_id)); P(offsetof(struct qf_data_event, real_len));
    P(offsetof(struct qf_data_event, direction)); P(offsetof(struct qf_data_event, data));
    P(sizeof(struct qf_sock_event)); P(offsetof(struct qf_sock_event, rport));
    P(offsetof(struct qf_sock_event, origin)); P(offsetof(struct qf_sock_event, raddr));
    P(offsetof(struct qf_sock_event, laddr));
    P(sizeof(struct qf_local_event)); P(offsetof(struct qf_local_event, laddr));
    P(sizeof(struct qf_close_event)); P(sizeof(struct qf_exec_event));
    P(QF_EV_DATA); P(QF_EV_SOCK); P(QF_EV_CLOSE); P(QF_EV_EXEC); P(QF_EV_EXIT); P(QF_EV_LOCAL);
    P(QF_CNT_RB_FULL); P(QF_CNT_FILTERED); P(QF_CNT_TRUNCATED); P(QF_CNT_TLS_NO_FD);
    P(QF_CNT_TLS_SKIPPED); P(QF_EXE_LEN); P(QF_SRC_GNUTLS); P(QF_ORIGIN_ACCEPT); P(QF_DIR_IN);
    P(sizeof(struct qf_sni_event)); P(offsetof(struct qf_sni_event, name)); P(QF_EV_SNI);
    P(QF_SNI_LEN);
    return 0;
}
"""


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler to read events.h with")
def test_layout_matches_events_h(tmp_path: Path) -> None:
    header = files("qtap_fluent.agent.bpf") / "events.h"
    (tmp_path / "events.h").write_text(header.read_text())
    (tmp_path / "layout.c").write_text(LAYOUT_C)
    subprocess.run(["cc", "-o", str(tmp_path / "layout"), str(tmp_path / "layout.c")],
                   check=True, cwd=tmp_path)
    out = subprocess.run([str(tmp_path / "layout")], capture_output=True, text=True, check=True)
    got = dict(line.rsplit(" ", 1) for line in out.stdout.splitlines())
    c = {k: int(v) for k, v in got.items()}
    assert c["sizeof(struct qf_hdr)"] == d.HDR.size
    assert c["offsetof(struct qf_data_event, data)"] == d.DATA_FIXED.size
    assert c["offsetof(struct qf_data_event, sock_id)"] == 24
    assert c["offsetof(struct qf_data_event, real_len)"] == 40
    assert c["offsetof(struct qf_data_event, direction)"] == 48
    assert c["sizeof(struct qf_sock_event)"] == d.SOCK.size
    assert c["offsetof(struct qf_sock_event, rport)"] == 34
    assert c["offsetof(struct qf_sock_event, origin)"] == 38
    assert c["offsetof(struct qf_sock_event, raddr)"] == 40
    assert c["offsetof(struct qf_sock_event, laddr)"] == 56
    assert c["sizeof(struct qf_local_event)"] == d.LOCAL.size
    assert c["offsetof(struct qf_local_event, laddr)"] == 40
    assert c["sizeof(struct qf_close_event)"] == d.CLOSE.size
    assert c["sizeof(struct qf_exec_event)"] == d.EXEC.size
    assert c["QF_EXE_LEN"] == d.EXE_LEN
    assert [c[f"QF_EV_{k}"] for k in ("DATA", "SOCK", "CLOSE", "EXEC", "EXIT", "LOCAL")] == [
        d.EV_DATA, d.EV_SOCK, d.EV_CLOSE, d.EV_EXEC, d.EV_EXIT, d.EV_LOCAL]
    assert [c[f"QF_CNT_{k.name}"] for k in d.Counter] == [int(k) for k in d.Counter]
    assert c["QF_SRC_GNUTLS"] == d.Source.GNUTLS
    assert c["QF_ORIGIN_ACCEPT"] == d.ORIGIN_ACCEPT and c["QF_DIR_IN"] == d.DIR_IN
    assert c["sizeof(struct qf_sni_event)"] == d.SNI.size
    assert c["offsetof(struct qf_sni_event, name)"] == 32
    assert c["QF_EV_SNI"] == d.EV_SNI and c["QF_SNI_LEN"] == d.SNI_LEN


def test_data_round_trip_keeps_truncation() -> None:
    raw = d.pack_data(pid=7, tid=8, fd=3, data=b"GET / HTTP/1.1\r\n", real_len=100, ts_ns=5,
                      sock_id=9, tls_ptr=0xABC, direction=d.DIR_IN, source=d.Source.OPENSSL)
    rec = d.decode(raw)
    assert rec == d.RawData(pid=7, tid=8, fd=3, ts_ns=5, sock_id=9, tls_ptr=0xABC, real_len=100,
                            direction=d.DIR_IN, source=d.Source.OPENSSL,
                            data=b"GET / HTTP/1.1\r\n")


def test_sock_round_trip_v4_and_v6() -> None:
    v4 = d.decode(d.pack_sock(pid=1, fd=4, sock_id=2, family=d.AF_INET, raddr=bytes([10, 0, 0, 1]),
                              rport=443, origin=d.ORIGIN_CONNECT, laddr=bytes([10, 0, 0, 2]),
                              lport=50000))
    assert isinstance(v4, d.RawSock)
    assert (v4.raddr, v4.rport, v4.laddr, v4.lport) == (bytes([10, 0, 0, 1]), 443,
                                                        bytes([10, 0, 0, 2]), 50000)
    v6 = d.decode(d.pack_sock(pid=1, fd=4, sock_id=2, family=d.AF_INET6, raddr=b"\0" * 15 + b"\1",
                              rport=8443, origin=d.ORIGIN_ACCEPT))
    assert isinstance(v6, d.RawSock)
    assert v6.raddr == b"\0" * 15 + b"\1" and v6.laddr is None and v6.origin == d.ORIGIN_ACCEPT


def test_other_records_round_trip() -> None:
    assert d.decode(d.pack_close(pid=3, fd=5, sock_id=6, ts_ns=1)) == d.RawClose(
        pid=3, fd=5, ts_ns=1, sock_id=6)
    assert d.decode(d.pack_exec(pid=3, filename="/usr/bin/curl")) == d.RawExec(
        pid=3, ts_ns=0, filename="/usr/bin/curl")
    assert d.decode(d.pack_exit(pid=3, ts_ns=2)) == d.RawExit(pid=3, ts_ns=2)
    assert d.decode(d.pack_sni(pid=3, tls_ptr=0x77, name="api.example.com")) == d.RawSni(
        pid=3, ts_ns=0, tls_ptr=0x77, name="api.example.com")
    assert d.decode(d.pack_local(pid=3, sock_id=4, family=d.AF_INET, laddr=b"\x7f\0\0\1",
                                 lport=1234)) == d.RawLocal(pid=3, ts_ns=0, sock_id=4,
                                                            family=d.AF_INET, lport=1234,
                                                            laddr=b"\x7f\0\0\1")


@pytest.mark.parametrize(("raw", "message"), [
    (b"\1\0\0", "shorter than its header"),
    (d.HDR.pack(99, 1, 1, 1, 0), "unknown record kind 99"),
    (d.pack_data(pid=1, fd=1, data=b"abcd")[:-1], "says 4 bytes but carries 3"),
    (d.pack_data(pid=1, fd=1, data=b"abcd", real_len=2), "carries 4 bytes of a 2-byte call"),
    (d.pack_sock(pid=1, fd=1, sock_id=1, family=2, raddr=b"", rport=1, origin=1)[:40],
     "sock record of 40 bytes"),
    (d.pack_sni(pid=1, tls_ptr=1, name="x")[:100], "sni record of 100 bytes"),
    (d.pack_data(pid=1, fd=1, data=b"ab")[:-2] + b"\0", "says 2 bytes but carries 1"),
])
def test_bad_records_raise_decode_error(raw: bytes, message: str) -> None:
    with pytest.raises(d.DecodeError, match=message):
        d.decode(raw)


@given(st.binary(max_size=400))
def test_arbitrary_bytes_only_ever_raise_decode_error(raw: bytes) -> None:
    try:
        d.decode(raw)
    except d.DecodeError:
        pass


def test_data_fields_are_read_in_place_at_an_offset() -> None:
    """The reader's hot path: fields straight from the ring's mapping, at a record's offset."""
    raw = d.pack_data(pid=7, tid=8, fd=3, data=b"hello", real_len=9, ts_ns=5, sock_id=9,
                      tls_ptr=0xABC, direction=d.DIR_IN, source=d.Source.GNUTLS)
    ring = memoryview(b"\xff" * 13 + raw + b"\xee" * 7)
    assert d.data_at(ring, 13, len(raw)) == (7, 8, 3, 5, 9, 0xABC, 9, d.DIR_IN,
                                             int(d.Source.GNUTLS), b"hello")
    with pytest.raises(d.DecodeError, match="says 5 bytes but carries 4"):
        d.data_at(ring, 13, len(raw) - 1)  # the record's own length bounds it, not the buffer
