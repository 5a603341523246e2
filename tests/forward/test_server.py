"""The asyncio server over real sockets: modes, acks after the consumer, limits, hostile peers."""

from __future__ import annotations

import logging
import os
import socket
import ssl
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest

from qtap_fluent.fluentbit.forward import codec
from qtap_fluent.fluentbit.forward.codec import Limits
from qtap_fluent.fluentbit.forward.events import EventTime
from qtap_fluent.fluentbit.forward.handshake import (
    ClientAuth,
    ServerAuth,
    answer_helo,
    check_pong,
)
from qtap_fluent.fluentbit.forward.server import tls_server_context

from .conftest import ServerThread, recv_until_closed

T = EventTime(1700000000, 7)


def connect(srv: ServerThread) -> socket.socket:
    return socket.create_connection((srv.host, srv.port), timeout=5)


def read_one(sock: socket.socket) -> object:
    """Read one msgpack object (the server writes each reply in one piece)."""
    unpacker = msgpack.Unpacker(raw=False)
    sock.settimeout(5)
    while True:
        data = sock.recv(65536)
        assert data, "server closed"
        unpacker.feed(data)
        for obj in unpacker:
            return obj


def test_all_modes_with_acks(server: ServerThread) -> None:
    payload = b"".join(codec.pack_entry(T, {"i": i}) for i in range(3))
    frames = [
        codec.encode_message("m", T, {"i": 0}, chunk="a1"),
        codec.encode_forward("f", [(T, {"i": i}) for i in range(3)], chunk="a2"),
        codec.encode_packed_forward("p", payload, size=3, chunk="a3"),
        codec.encode_packed_forward("g", codec.compress(payload, "gzip"), compressed="gzip",
                                    chunk="a4"),
    ]
    with connect(server) as sock:
        acks = []
        for frame in frames:
            sock.sendall(frame)
            acks.append(read_one(sock))
    assert acks == [{"ack": "a1"}, {"ack": "a2"}, {"ack": "a3"}, {"ack": "a4"}]
    entries = server.wait_for(10)
    assert [(tag, rec["i"]) for tag, _, rec, _ in entries] == [
        ("m", 0), ("f", 0), ("f", 1), ("f", 2), ("p", 0), ("p", 1), ("p", 2),
        ("g", 0), ("g", 1), ("g", 2)]
    assert all(t == T for _, t, _, _ in entries)


def test_fluentd_style_str32_payload_gets_its_chunk_echoed(server: ServerThread) -> None:
    # Fluentd's out_forward: entries in a str32, chunk id = Base64 + "\n" (echo it exactly).
    entries = b"".join(codec.pack_entry(T, {"i": i}) for i in range(3))
    frame = (b"\x93" + codec.packb("fd") + b"\xdb" + len(entries).to_bytes(4, "big") + entries
             + codec.packb({"size": 3, "chunk": "VESFkVa4eEpn+/hwFcOpLw==\n"}))
    with connect(server) as sock:
        sock.sendall(frame)
        assert read_one(sock) == {"ack": "VESFkVa4eEpn+/hwFcOpLw==\n"}
    assert [rec["i"] for _, _, rec, _ in server.wait_for(3)] == [0, 1, 2]


def test_no_ack_until_the_consumer_accepts(server: ServerThread) -> None:
    server.accept = lambda batch: False
    with connect(server) as sock:
        sock.sendall(codec.encode_message("t", T, {"a": 1}, chunk="nope"))
        # refused: the connection is closed and no ack is ever written
        assert recv_until_closed(sock) == b""
    assert server.entries == []
    assert server.server.stats.rejected_batches == 1
    # the peer retries on a new connection; now the consumer accepts
    server.accept = lambda batch: True
    with connect(server) as sock:
        sock.sendall(codec.encode_message("t", T, {"a": 1}, chunk="nope"))
        assert read_one(sock) == {"ack": "nope"}
    assert len(server.wait_for(1)) == 1


def test_consumer_exception_means_no_ack(server: ServerThread) -> None:
    def boom(batch: object) -> bool:
        raise RuntimeError("disk full")

    server.accept = boom
    with connect(server) as sock:
        sock.sendall(codec.encode_message("t", T, {"a": 1}, chunk="x"))
        assert recv_until_closed(sock) == b""


def test_hostile_stream_closes_only_that_connection(
    server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    good = connect(server)
    with caplog.at_level(logging.WARNING, logger="qtap_fluent.forward.server"):
        with connect(server) as bad:
            bad.sendall(b"\xc1garbage")
            assert recv_until_closed(bad) == b""
        good.sendall(codec.encode_message("t", T, {"still": "alive"}, chunk="ok"))
        assert read_one(good) == {"ack": "ok"}
    good.close()
    lines = [r for r in caplog.records if "closing connection" in r.getMessage()]
    assert len(lines) == 1 and "malformed" in lines[0].getMessage()
    assert server.server.stats.protocol_errors == 1


def test_per_connection_frame_limit(make_server: Callable[..., ServerThread]) -> None:
    srv = make_server(limits=Limits(max_frame=10_000, max_payload=10_000,
                                    max_decompressed=10_000))
    with connect(srv) as sock:
        sock.sendall(codec.encode_message("t", T, {"x": "y" * 20_000}, chunk="big"))
        assert recv_until_closed(sock) == b""
    with connect(srv) as sock:
        sock.sendall(codec.encode_message("t", T, {"x": "y" * 100}, chunk="small"))
        assert read_one(sock) == {"ack": "small"}


def test_heartbeat_and_message_mode_without_chunk_get_no_reply(server: ServerThread) -> None:
    with connect(server) as sock:
        sock.sendall(b"\xc0" + codec.encode_message("t", T, {"a": 1}))
        sock.shutdown(socket.SHUT_WR)
        assert recv_until_closed(sock) == b""
    assert len(server.wait_for(1)) == 1


def test_handshake_over_a_socket(make_server: Callable[..., ServerThread]) -> None:
    srv = make_server(auth=ServerAuth(shared_key="k", users={"u": "p"}, self_hostname="srv"))
    auth = ClientAuth(shared_key="k", username="u", password="p")
    salt = os.urandom(16)
    with connect(srv) as sock:
        helo = codec.decode_response(msgpack.unpackb(sock.recv(4096), raw=False,
                                                     unicode_errors="surrogateescape"))
        sock.sendall(answer_helo(auth, helo, salt))  # type: ignore[arg-type]
        pong = codec.decode_response(read_one(sock))
        check_pong(auth, pong, helo, salt)  # type: ignore[arg-type]
        sock.sendall(codec.encode_message("t", T, {"a": 1}, chunk="c"))
        assert read_one(sock) == {"ack": "c"}


def test_wrong_key_is_logged_and_closed(
    make_server: Callable[..., ServerThread], caplog: pytest.LogCaptureFixture
) -> None:
    srv = make_server(auth=ServerAuth(shared_key="k"))
    with caplog.at_level(logging.WARNING, logger="qtap_fluent.forward.server"), \
            connect(srv) as sock:
        helo = codec.decode_response(msgpack.unpackb(sock.recv(4096), raw=False,
                                                     unicode_errors="surrogateescape"))
        sock.sendall(answer_helo(ClientAuth(shared_key="bad"), helo,  # type: ignore[arg-type]
                                 os.urandom(16)))
        assert recv_until_closed(sock) == b""
    assert any("shared key mismatch" in r.getMessage() for r in caplog.records)
    assert srv.server.stats.auth_failures == 1


def test_tls(make_server: Callable[..., ServerThread], server_ssl: ssl.SSLContext,
             client_ssl: ssl.SSLContext) -> None:
    srv = make_server(ssl=server_ssl)
    with client_ssl.wrap_socket(connect(srv), server_hostname="127.0.0.1") as sock:
        sock.sendall(codec.encode_message("t", T, {"tls": True}, chunk="s"))
        assert read_one(sock) == {"ack": "s"}
    assert srv.wait_for(1)[0][2] == {"tls": True}


def test_tls_from_pem_files(make_server: Callable[..., ServerThread], ca: Any,
                            client_ssl: ssl.SSLContext, tmp_path: Path) -> None:
    cert = ca.issue_cert("127.0.0.1")
    pem = tmp_path / "server.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
    srv = make_server(ssl=tls_server_context(str(pem)))
    with client_ssl.wrap_socket(connect(srv), server_hostname="127.0.0.1") as sock:
        sock.sendall(codec.encode_message("t", T, {"pem": True}, chunk="p"))
        assert read_one(sock) == {"ack": "p"}


def test_unix_socket(make_server: Callable[..., ServerThread]) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "fw.sock")
        make_server(unix_path=path)
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(path)
            sock.sendall(codec.encode_message("t", T, {"unix": 1}, chunk="u"))
            assert read_one(sock) == {"ack": "u"}


def test_clean_shutdown_acks_the_batch_in_progress(
    make_server: Callable[..., ServerThread]
) -> None:
    srv = make_server()
    release = []

    def slow(batch: object) -> bool:
        release.append(1)
        time.sleep(0.3)  # the consumer is busy when close() starts
        return True

    srv.accept = slow
    with connect(srv) as sock:
        sock.sendall(codec.encode_message("t", T, {"a": 1}, chunk="late"))
        while not release:
            time.sleep(0.01)
        srv.stop()
        assert msgpack.unpackb(recv_until_closed(sock)) == {"ack": "late"}
    srv.stop = lambda: None  # type: ignore[method-assign]
