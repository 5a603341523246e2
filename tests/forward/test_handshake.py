"""HELO/PING/PONG: digests, both state machines, and the interop quirks of Fluent Bit."""

from __future__ import annotations

import hashlib

import msgpack
import pytest

from qtap_fluent.fluentbit.forward import codec
from qtap_fluent.fluentbit.forward.connection import ClientConnection, ServerConnection, State
from qtap_fluent.fluentbit.forward.events import Ack, EntriesReceived, ForwardProtocolError
from qtap_fluent.fluentbit.forward.handshake import (
    ClientAuth,
    PingVerdict,
    ServerAuth,
    digest,
    encode_helo,
)

NONCE = bytes(range(200, 216))  # not valid UTF-8, like Fluent Bit's random nonce
USER_SALT = bytes(range(240, 256))
CLIENT_SALT = b"0123456789abcdef"


def sha512_hex(data: bytes) -> bytes:
    return hashlib.sha512(data).hexdigest().encode()


def test_digest_is_lowercase_hex_sha512_of_the_concatenation() -> None:
    assert digest(b"salt", b"host", b"nonce", b"key") == sha512_hex(b"salthostnoncekey")
    assert len(digest(b"x")) == 128


def run_handshake(server_auth: ServerAuth, client_auth: ClientAuth) -> tuple[
        ServerConnection, ClientConnection, PingVerdict, bytes]:
    server = ServerConnection(auth=server_auth, nonce=NONCE, user_salt=USER_SALT)
    client = ClientConnection(client_auth, salt=CLIENT_SALT)
    client.receive_data(server.greeting())
    assert client.next_event() is not None
    ping = client.data_to_send()
    server.receive_data(ping)
    verdict = server.next_event()
    assert isinstance(verdict, PingVerdict)
    return server, client, verdict, ping


def test_shared_key_and_users_accepted() -> None:
    server, client, verdict, ping = run_handshake(
        ServerAuth(shared_key="secret", users={"alice": "pw"}, self_hostname="srv"),
        ClientAuth(shared_key="secret", self_hostname="cli", username="alice", password="pw"),
    )
    assert verdict.ok and verdict.pong is not None
    assert server.state is State.TRANSPORT
    # The PING carries exactly the spec's digests, every field a msgpack str (Fluent Bit
    # rejects bin in PING).
    raw = msgpack.unpackb(ping, raw=True)
    assert [type(x) for x in raw] == [bytes] * 6
    assert ping[1:6] == b"\xa4PING"
    assert raw[3] == sha512_hex(CLIENT_SALT + b"cli" + NONCE + b"secret")
    assert raw[5] == sha512_hex(USER_SALT + b"alice" + b"pw")
    # PONG digest proves the server knows the key; the client verifies it.
    pong = msgpack.unpackb(verdict.pong, raw=True)
    assert pong == [b"PONG", True, b"", b"srv", sha512_hex(CLIENT_SALT + b"srv" + NONCE + b"secret")]
    client.receive_data(verdict.pong)
    client.next_event()
    assert client.ready
    # transport phase: requests and acks flow
    server.receive_data(codec.encode_message("t", 1, {"a": 1}, chunk="c"))
    assert isinstance(server.next_event(), EntriesReceived)
    client.receive_data(codec.encode_ack("c"))
    assert client.next_event() == Ack(chunk="c")


def test_helo_nonce_is_str_with_random_bytes() -> None:
    helo = encode_helo(NONCE, USER_SALT)
    assert msgpack.unpackb(helo, raw=True) == [
        b"HELO", {b"nonce": NONCE, b"auth": USER_SALT, b"keepalive": True}]
    with pytest.raises(UnicodeDecodeError):
        msgpack.unpackb(helo, raw=False)  # what a naive peer would hit


def test_helo_with_bin_fields_is_accepted_by_the_client() -> None:
    helo = msgpack.packb(["HELO", {"nonce": NONCE, "auth": b""}], use_bin_type=True)
    client = ClientConnection(ClientAuth(shared_key="k"), salt=CLIENT_SALT)
    client.receive_data(helo)
    client.next_event()
    raw = msgpack.unpackb(client.data_to_send(), raw=True)
    assert raw[4:] == [b"", b""]  # no auth salt: no credentials sent (as out_forward)


def test_wrong_shared_key_closes_without_pong() -> None:
    server, _client, verdict, _ = run_handshake(
        ServerAuth(shared_key="secret"), ClientAuth(shared_key="guess"))
    assert not verdict.ok and verdict.pong is None
    assert server.state is State.CLOSED
    with pytest.raises(ForwardProtocolError):
        server.next_event()


def test_wrong_password_gets_a_negative_pong() -> None:
    _, client, verdict, _ = run_handshake(
        ServerAuth(shared_key="k", users={"alice": "pw"}),
        ClientAuth(shared_key="k", username="alice", password="nope"))
    assert not verdict.ok and verdict.pong is not None
    assert msgpack.unpackb(verdict.pong) == ["PONG", False, "username/password mismatch", "", ""]
    client.receive_data(verdict.pong)
    with pytest.raises(ForwardProtocolError, match="refused"):
        client.next_event()


def test_unknown_user_is_refused() -> None:
    _, _, verdict, _ = run_handshake(
        ServerAuth(shared_key="k", users={"alice": "pw"}),
        ClientAuth(shared_key="k", username="mallory", password="pw"))
    assert not verdict.ok


def test_forged_pong_digest_is_rejected() -> None:
    client = ClientConnection(ClientAuth(shared_key="k"), salt=CLIENT_SALT)
    client.receive_data(encode_helo(NONCE, b""))
    client.next_event()
    client.receive_data(msgpack.packb(["PONG", True, "", "srv", "0" * 128]))
    with pytest.raises(ForwardProtocolError, match="digest"):
        client.next_event()


def test_client_without_key_reports_that_the_server_wants_one() -> None:
    client = ClientConnection(None)
    client.receive_data(encode_helo(NONCE, b""))
    with pytest.raises(ForwardProtocolError, match="shared key"):
        client.next_event()


def test_data_before_ping_is_refused() -> None:
    server = ServerConnection(auth=ServerAuth(shared_key="k"), nonce=NONCE)
    server.receive_data(codec.encode_message("t", 1, {}))
    with pytest.raises(ForwardProtocolError, match="PING"):
        server.next_event()


def test_ping_fields_must_be_strings_or_bytes() -> None:
    server = ServerConnection(auth=ServerAuth(shared_key="k"), nonce=NONCE)
    server.receive_data(msgpack.packb(["PING", 1, 2, 3, 4, 5]))
    with pytest.raises(ForwardProtocolError):
        server.next_event()


def client_events(pieces: list[bytes]) -> list[object]:
    client = ClientConnection(ClientAuth(shared_key="k"), salt=CLIENT_SALT)
    out: list[object] = []
    for piece in pieces:
        client.receive_data(piece)
        while (event := client.next_event()) is not None:
            out.append(event)
    return out


def test_client_side_decoding_is_split_invariant() -> None:
    # HELO, then (after our PING) a PONG computed for it, then acks: whole and byte by byte.
    helo = encode_helo(NONCE, b"")
    probe = ClientConnection(ClientAuth(shared_key="k"), salt=CLIENT_SALT)
    probe.receive_data(helo)
    probe.next_event()
    server = ServerConnection(auth=ServerAuth(shared_key="k", self_hostname="srv"), nonce=NONCE)
    server.receive_data(probe.data_to_send())
    verdict = server.next_event()
    assert isinstance(verdict, PingVerdict) and verdict.pong is not None
    stream = helo + verdict.pong + codec.encode_ack("a") + codec.encode_ack("b\n")
    whole = client_events([stream])
    assert [type(e).__name__ for e in whole] == ["Helo", "Pong", "Ack", "Ack"]
    assert client_events([stream[i:i + 1] for i in range(len(stream))]) == whole
