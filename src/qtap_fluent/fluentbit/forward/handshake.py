"""The forward protocol's optional handshake (HELO / PING / PONG), sans-I/O.

Flow (spec v1 "Handshake Messages"; Fluent Bit ``in_forward/fw_prot.c``, ``out_forward``)::

    server -> client  ["HELO", {"nonce": n, "auth": a, "keepalive": true}]
    client -> server  ["PING", host, salt, sha512_hex(salt+host+n+key), user,
                       sha512_hex(a+user+password)]
    server -> client  ["PONG", ok, reason, server_host, sha512_hex(salt+server_host+n+key)]

All digests are lower-case hex SHA-512 over the byte concatenation. Random values (nonce, auth
salt, shared-key salt) are passed in by the caller, so this module reads no clock and no
entropy source. Interop rules that shape it:

* Fluent Bit's HELO nonce/auth are 16 random bytes in msgpack *str* (invalid UTF-8 likely);
  the codec hands them over as bytes.
* Fluent Bit's in_forward rejects a PING with any *bin* field, so :func:`encode_ping` packs
  every field as str (surrogateescape keeps arbitrary bytes intact).
* A shared-key mismatch closes the connection without a PONG (as in_forward does); a bad
  user/password gets ``["PONG", false, "username/password mismatch", "", ""]``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from .encode import packb
from .events import ForwardProtocolError, Helo, Ping, Pong


def digest(*parts: bytes) -> bytes:
    """Lower-case hex SHA-512 of the concatenated parts, as ASCII bytes (128 of them)."""
    h = hashlib.sha512()
    for part in parts:
        h.update(part)
    return h.hexdigest().encode("ascii")


def _b(value: str | bytes) -> bytes:
    return value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value


def _s(value: bytes) -> str:
    # Pack as msgpack str holding exactly these bytes.
    return value.decode("utf-8", "surrogateescape")


def encode_helo(nonce: bytes, auth: bytes, *, keepalive: bool = True) -> bytes:
    """HELO frame; ``auth`` empty means no user authentication."""
    return packb(["HELO", {"nonce": _s(nonce), "auth": _s(auth), "keepalive": keepalive}])


def encode_ping(
    hostname: str | bytes,
    salt: bytes,
    shared_key_digest: bytes,
    username: str | bytes = b"",
    password_digest: bytes = b"",
) -> bytes:
    """PING frame with every field as msgpack str (Fluent Bit rejects bin here)."""
    fields = [hostname, salt, shared_key_digest, username, password_digest]
    return packb(["PING", *(_s(_b(f)) for f in fields)])


def encode_pong(ok: bool, reason: str, hostname: str | bytes, shared_key_digest: bytes) -> bytes:
    """PONG frame."""
    return packb(["PONG", ok, reason, _s(_b(hostname)), _s(shared_key_digest)])


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerAuth:
    """What a server checks: the shared key and, optionally, users and their passwords."""

    shared_key: str | bytes
    users: Mapping[str, str | bytes] | None = None
    self_hostname: str | bytes = "localhost"  #: in_forward's ``self_hostname`` default


@dataclass(frozen=True, slots=True, kw_only=True)
class PingVerdict:
    """Result of checking a PING: the PONG to send (``None``: close silently) and whether the
    connection may proceed to the transport phase."""

    pong: bytes | None
    ok: bool
    reason: str


def check_ping(auth: ServerAuth, ping: Ping, nonce: bytes, user_salt: bytes) -> PingVerdict:
    """Verify a PING against the HELO this server sent (``nonce``, ``user_salt``)."""
    key = _b(auth.shared_key)
    expected = digest(ping.shared_key_salt, ping.hostname, nonce, key)
    if not hmac.compare_digest(expected, ping.shared_key_digest.lower()):
        return PingVerdict(pong=None, ok=False, reason="shared key mismatch")
    if auth.users:
        password = auth.users.get(ping.username.decode("utf-8", "surrogateescape"))
        want = digest(user_salt, ping.username, _b(password)) if password is not None else b""
        if password is None or not hmac.compare_digest(want, ping.password_digest.lower()):
            pong = encode_pong(False, "username/password mismatch", "", b"")
            return PingVerdict(pong=pong, ok=False, reason="username/password mismatch")
    host = _b(auth.self_hostname)
    pong = encode_pong(True, "", host, digest(ping.shared_key_salt, host, nonce, key))
    return PingVerdict(pong=pong, ok=True, reason="")


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientAuth:
    """What a client proves: the shared key and, when the server asks, user and password."""

    shared_key: str | bytes
    self_hostname: str | bytes = "localhost"
    username: str | bytes = ""
    password: str | bytes = ""


def answer_helo(auth: ClientAuth, helo: Helo, salt: bytes) -> bytes:
    """The PING answering ``helo``; ``salt`` is fresh random bytes chosen by the caller.

    User credentials are sent only when the HELO carries an auth salt (as out_forward does).
    """
    host = _b(auth.self_hostname)
    key_digest = digest(salt, host, helo.nonce, _b(auth.shared_key))
    if helo.auth:
        user = _b(auth.username)
        return encode_ping(host, salt, key_digest, user, digest(helo.auth, user, _b(auth.password)))
    return encode_ping(host, salt, key_digest)


def check_pong(auth: ClientAuth, pong: Pong, helo: Helo, salt: bytes) -> None:
    """Raise :class:`ForwardProtocolError` unless the PONG accepts us and proves the key."""
    if not pong.auth_result:
        raise ForwardProtocolError(f"server refused authentication: {pong.reason or 'no reason'}")
    expected = digest(salt, pong.server_hostname, helo.nonce, _b(auth.shared_key))
    if not hmac.compare_digest(expected, pong.shared_key_digest.lower()):
        raise ForwardProtocolError("PONG digest does not prove the shared key")
