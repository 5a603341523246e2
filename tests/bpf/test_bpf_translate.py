"""Translator: kernel records -> DataEvent/CloseEvent, with a fake host (no kernel needed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from qtap_fluent.agent.bpf import decode as d
from qtap_fluent.agent.bpf.translate import SYNTH_ID_BASE, Translator
from qtap_fluent.agent.events import Address, CloseEvent, DataEvent, Direction, Origin

LOCAL = Address(ip="10.0.0.2", port=40000)
REMOTE = Address(ip="93.184.216.34", port=443)


@dataclass
class FakeHost:
    exes: dict[int, str] = field(default_factory=dict)
    sockets: dict[tuple[int, int], tuple[Address, Address]] = field(default_factory=dict)
    asked: list[tuple[int, int]] = field(default_factory=list)

    def exe(self, pid: int) -> str | None:
        return self.exes.get(pid)

    def socket_addresses(self, pid: int, fd: int) -> tuple[Address, Address] | None:
        self.asked.append((pid, fd))
        return self.sockets.get((pid, fd))

    def resolve(self, path: str) -> str:
        return path.replace("/bin/python3", "/bin/python3.11")


def feed(t: Translator, *raws: bytes) -> list[object]:
    out: list[object] = []
    for raw in raws:
        out.extend(t.feed(d.decode(raw)))
    return out


def connect(pid: int = 10, fd: int = 5, sock_id: int = 1) -> bytes:
    return d.pack_sock(pid=pid, fd=fd, sock_id=sock_id, family=d.AF_INET,
                       raddr=bytes([93, 184, 216, 34]), rport=443, origin=d.ORIGIN_CONNECT,
                       laddr=bytes([10, 0, 0, 2]), lport=40000)


def test_connection_data_and_close() -> None:
    host = FakeHost(exes={10: "/usr/bin/curl"})
    t = Translator(host=host, clock_offset_ns=1000)
    out = feed(t, connect(),
               d.pack_data(pid=10, fd=5, sock_id=1, data=b"GET / HTTP/1.1\r\n", ts_ns=1,
                           tls_ptr=0x55, source=d.Source.OPENSSL),
               d.pack_data(pid=10, fd=5, sock_id=1, data=b"HTTP/1.1 200 OK\r\n",
                           real_len=5000, direction=d.DIR_IN, ts_ns=2),
               d.pack_close(pid=10, fd=5, sock_id=1, ts_ns=3))
    req, resp, close = out
    assert isinstance(req, DataEvent) and isinstance(resp, DataEvent)
    assert req == DataEvent(conn_id=1, pid=10, tid=10, exe="/usr/bin/curl",
                            direction=Direction.OUTBOUND, local=LOCAL, remote=REMOTE,
                            origin=Origin.CONNECT, tls=True, ts_ns=1001,
                            data=b"GET / HTTP/1.1\r\n", real_len=16)
    assert resp.direction is Direction.INBOUND and resp.tls is False
    assert resp.truncated == 5000 - len(b"HTTP/1.1 200 OK\r\n")
    assert close == CloseEvent(conn_id=1, pid=10, ts_ns=1003)
    assert host.asked == []  # the kernel saw both ends: no /proc lookups
    assert t.stats.bytes_truncated == resp.truncated


def test_exe_taken_at_exec_survives_the_process() -> None:
    host = FakeHost(exes={})  # /proc/PID/exe already gone when the records are read
    t = Translator(host=host)
    out = feed(t, d.pack_exec(pid=10, filename="/usr/bin/python3"), connect(),
               d.pack_data(pid=10, fd=5, sock_id=1, data=b"x"))
    assert isinstance(out[0], DataEvent) and out[0].exe == "/usr/bin/python3.11"


def test_exit_closes_every_connection_of_the_process() -> None:
    t = Translator(host=FakeHost())
    feed(t, connect(sock_id=1, fd=5), connect(sock_id=2, fd=6), connect(pid=11, sock_id=3))
    out = feed(t, d.pack_exit(pid=10, ts_ns=9))
    assert sorted(e.conn_id for e in out if isinstance(e, CloseEvent)) == [1, 2]
    # a later close for the same socket is not reported twice
    assert feed(t, d.pack_close(pid=10, fd=5, sock_id=1)) == []
    assert len(feed(t, d.pack_close(pid=11, fd=5, sock_id=3))) == 1


def test_untracked_fd_gets_a_synthetic_id_and_addresses_from_the_host() -> None:
    host = FakeHost(sockets={(20, 7): (LOCAL, REMOTE)})
    t = Translator(host=host)
    a, b = feed(t, d.pack_data(pid=20, fd=7, data=b"one"), d.pack_data(pid=20, fd=7, data=b"two"))
    assert isinstance(a, DataEvent) and isinstance(b, DataEvent)
    assert a.conn_id == b.conn_id >= SYNTH_ID_BASE
    assert a.origin is Origin.UNKNOWN and a.remote == REMOTE and a.local == LOCAL
    assert host.asked == [(20, 7)]  # asked once, then remembered
    # TLS data whose fd the kernel never learned: keyed by the SSL pointer
    c, e = feed(t, d.pack_data(pid=20, fd=-1, tls_ptr=1, data=b"a", source=d.Source.OPENSSL),
                d.pack_data(pid=20, fd=-1, tls_ptr=2, data=b"b", source=d.Source.OPENSSL))
    assert isinstance(c, DataEvent) and isinstance(e, DataEvent)
    assert c.conn_id != e.conn_id and c.remote is None
    # exit forgets the synthetic connections too
    assert len(feed(t, d.pack_exit(pid=20))) == 3


def test_accept_without_address_is_filtered_in_user_space() -> None:
    loop = (Address(ip="127.0.0.1", port=8080), Address(ip="127.0.0.1", port=5555))
    t = Translator(host=FakeHost(sockets={(30, 4): loop}), ignore_loopback=True)
    out = feed(t, d.pack_sock(pid=30, fd=4, sock_id=8, family=0, raddr=b"", rport=0,
                              origin=d.ORIGIN_ACCEPT),
               d.pack_data(pid=30, fd=4, sock_id=8, data=b"GET /"),
               d.pack_close(pid=30, fd=4, sock_id=8))
    assert out == [] and t.stats.filtered == 1


def test_local_address_learned_after_connect_returned() -> None:
    t = Translator(host=FakeHost())
    out = feed(t, d.pack_sock(pid=1, fd=3, sock_id=4, family=d.AF_INET6, raddr=b"\0" * 15 + b"\1",
                              rport=443, origin=d.ORIGIN_CONNECT),
               d.pack_local(pid=1, sock_id=4, family=d.AF_INET6, laddr=b"\0" * 15 + b"\1",
                            lport=5000),
               d.pack_data(pid=1, fd=3, sock_id=4, data=b"x"))
    assert isinstance(out[0], DataEvent)
    assert out[0].local == Address(ip="::1", port=5000)
    assert out[0].remote == Address(ip="::1", port=443)


def test_ipv4_mapped_addresses_read_as_ipv4() -> None:
    t = Translator(host=FakeHost())
    mapped = b"\0" * 10 + b"\xff\xff" + bytes([127, 0, 0, 1])
    out = feed(t, d.pack_sock(pid=1, fd=3, sock_id=4, family=d.AF_INET6, raddr=mapped,
                              rport=80, origin=d.ORIGIN_ACCEPT),
               d.pack_data(pid=1, fd=3, sock_id=4, data=b"x"))
    assert isinstance(out[0], DataEvent) and out[0].remote == Address(ip="127.0.0.1", port=80)


@pytest.mark.parametrize(("direction", "kept"), [("all", {1, 2}), ("egress", {1}),
                                                 ("ingress", {2})])
def test_direction_filter(direction: str, kept: set[int]) -> None:
    t = Translator(host=FakeHost(), direction=direction)
    accept = d.pack_sock(pid=1, fd=9, sock_id=2, family=d.AF_INET, raddr=bytes(4), rport=1,
                         origin=d.ORIGIN_ACCEPT)
    out = feed(t, connect(pid=1, fd=5, sock_id=1), accept,
               d.pack_data(pid=1, fd=5, sock_id=1, data=b"a"),
               d.pack_data(pid=1, fd=9, sock_id=2, data=b"b"))
    assert {e.conn_id for e in out if isinstance(e, DataEvent)} == kept


def test_unknown_direction_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown direction 'sideways'"):
        Translator(host=FakeHost(), direction="sideways")


def test_connection_table_is_bounded() -> None:
    t = Translator(host=FakeHost(), max_connections=3)
    feed(t, *(connect(fd=i, sock_id=i) for i in range(1, 6)))
    assert len(t._conns) == 3
    assert sorted(t._conns) == [3, 4, 5]


def test_tls_call_without_learned_fd_joins_the_connection_of_its_ssl_pointer() -> None:
    t = Translator(host=FakeHost())
    out = feed(t, connect(pid=10, fd=5, sock_id=1),
               d.pack_data(pid=10, fd=5, sock_id=1, tls_ptr=0xA, data=b"GET / HTTP/1.1\r\n\r\n",
                           source=d.Source.OPENSSL),
               # response already buffered inside OpenSSL: no syscall, so no fd
               d.pack_data(pid=10, fd=-1, tls_ptr=0xA, data=b"HTTP/1.1 200 OK\r\n\r\n",
                           direction=d.DIR_IN, source=d.Source.OPENSSL),
               d.pack_data(pid=10, fd=-1, tls_ptr=0xB, data=b"other", source=d.Source.OPENSSL))
    assert [e.conn_id for e in out if isinstance(e, DataEvent)][:2] == [1, 1]
    assert isinstance(out[2], DataEvent) and out[2].conn_id != 1
    feed(t, d.pack_close(pid=10, fd=5, sock_id=1))
    assert (10, 0xA) not in t._by_ptr  # forgotten with its connection


def test_exe_cache_is_bounded_and_exec_replaces_the_exe() -> None:
    t = Translator(host=FakeHost(), max_processes=2)
    for pid in (1, 2, 3):
        t.note_exe(pid, f"/bin/p{pid}")
    assert sorted(t._exe) == [2, 3]
    feed(t, d.pack_exec(pid=3, filename="/usr/bin/new"))
    assert t._exe[3] == "/usr/bin/new"


def test_sni_set_before_the_handshake_lands_on_that_connection_only() -> None:
    t = Translator(host=FakeHost(exes={10: "/usr/bin/curl"}))
    out = feed(t, connect(sock_id=1, fd=5), connect(sock_id=2, fd=6),
               d.pack_sni(pid=10, tls_ptr=0x55, name="api.example.com"),
               d.pack_data(pid=10, fd=5, sock_id=1, data=b"GET / HTTP/1.1\r\n", tls_ptr=0x55,
                           source=d.Source.OPENSSL),
               d.pack_data(pid=10, fd=6, sock_id=2, data=b"GET / HTTP/1.1\r\n", tls_ptr=0x66,
                           source=d.Source.OPENSSL),
               d.pack_data(pid=10, fd=5, sock_id=1, data=b"HTTP/1.1 200 OK\r\n", tls_ptr=0x55,
                           direction=d.DIR_IN, source=d.Source.OPENSSL),
               # the SSL* is freed and the next connection gets the same address, no name
               d.pack_data(pid=10, fd=7, sock_id=3, data=b"GET /2 HTTP/1.1\r\n", tls_ptr=0x55,
                           source=d.Source.OPENSSL))
    assert [(e.conn_id, e.sni) for e in out if isinstance(e, DataEvent)] == [
        (1, "api.example.com"), (2, None), (1, "api.example.com"), (3, None)]


def test_sni_of_another_process_with_the_same_pointer_is_not_taken() -> None:
    t = Translator(host=FakeHost())
    out = feed(t, connect(pid=10, sock_id=1), d.pack_sni(pid=11, tls_ptr=0x55, name="x.test"),
               d.pack_data(pid=10, fd=5, sock_id=1, data=b"x", tls_ptr=0x55,
                           source=d.Source.OPENSSL))
    assert isinstance(out[0], DataEvent) and out[0].sni is None


def test_pending_server_names_are_bounded() -> None:
    t = Translator(host=FakeHost(), max_connections=4)
    feed(t, *(d.pack_sni(pid=10, tls_ptr=p, name=f"n{p}.test") for p in range(1, 11)))
    assert len(t._sni) == 4  # the oldest were dropped


def test_fast_data_event_constructor_matches_the_class() -> None:
    """The reader builds DataEvents without their __init__ (translate._new_data_event): if
    DataEvent's fields change, DATA_EVENT_FIELDS must follow or the fast path is off."""
    import dataclasses

    from qtap_fluent.agent.bpf import translate

    assert translate.FAST_DATA_EVENT, "DataEvent's fields changed: update DATA_EVENT_FIELDS"
    values: dict[str, Any] = {"conn_id": 1, "pid": 2, "tid": 3, "exe": "/x", "direction": Direction.INBOUND,
              "local": LOCAL, "remote": REMOTE, "origin": Origin.ACCEPT, "tls": True,
              "ts_ns": 4, "data": b"abc", "real_len": 9, "sni": "h.test", "container_id": "c"}
    assert tuple(values) == translate.DATA_EVENT_FIELDS
    fast = translate._new_data_event(*values.values())
    assert fast == DataEvent(**values)
    assert hash(fast) == hash(DataEvent(**values))
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.pid = 5  # type: ignore[misc]
