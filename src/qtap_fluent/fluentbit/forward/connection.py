"""Per-connection protocol state for both ends of a forward connection, sans-I/O.

``ServerConnection``: feed it what the socket read, take events out, write what it tells you::

    conn = ServerConnection(limits, auth=None)          # or ServerAuth(...) + random nonce/salt
    send(conn.greeting())                               # HELO when auth is on, else b""
    conn.receive_data(data)
    while (event := conn.next_event()) is not None:
        match event:
            case EntriesReceived(): ...; if event.chunk is not None: send(encode_ack(event.chunk))
            case PingVerdict(): send(event.pong or b""); close unless event.ok

``ClientConnection`` is the mirror: it answers HELO with PING (``data_to_send()``), checks PONG,
and turns ``{"ack": id}`` responses into :class:`~.events.Ack` events.

The legal (state, input) pairs are the handler tables below; anything else is a
:class:`~.events.ForwardProtocolError`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

from .codec import (
    DEFAULT_LIMITS,
    Limits,
    ObjectReader,
    decode_ping,
    decode_request,
    decode_response,
)
from .events import Ack, EntriesReceived, ForwardProtocolError, Heartbeat, Helo, Pong
from .handshake import (
    ClientAuth,
    PingVerdict,
    ServerAuth,
    answer_helo,
    check_ping,
    check_pong,
    encode_helo,
)


class State(enum.Enum):
    """Connection phases (spec v1: optional handshake phase, then transport phase)."""

    AWAIT_PING = "await_ping"  #: server sent HELO
    AWAIT_HELO = "await_helo"  #: client waits for the server's HELO
    AWAIT_PONG = "await_pong"  #: client sent PING
    TRANSPORT = "transport"
    CLOSED = "closed"


ServerEvent = EntriesReceived | Heartbeat | PingVerdict


class ServerConnection:
    """Receiving side of one connection: handshake (optional) then requests."""

    def __init__(
        self,
        limits: Limits = DEFAULT_LIMITS,
        auth: ServerAuth | None = None,
        *,
        nonce: bytes = b"",
        user_salt: bytes = b"",
    ) -> None:
        if auth is not None and len(nonce) < 16:
            raise ValueError("a handshake needs a random nonce of at least 16 bytes")
        self.limits = limits
        self.auth = auth
        self._nonce = nonce
        self._user_salt = user_salt if auth is not None and auth.users else b""
        self._reader = ObjectReader(limits)
        self.state = State.AWAIT_PING if auth is not None else State.TRANSPORT
        self._handlers: dict[State, Callable[[Any, int], ServerEvent]] = {
            State.AWAIT_PING: self._on_ping,
            State.TRANSPORT: self._on_request,
        }

    def greeting(self) -> bytes:
        """Bytes to send as soon as the connection opens (HELO, or nothing without auth)."""
        if self.auth is None:
            return b""
        return encode_helo(self._nonce, self._user_salt)

    def receive_data(self, data: bytes) -> None:
        """Bytes read from the peer; ``b""`` when it closed."""
        self._reader.receive_data(data)

    def next_event(self) -> ServerEvent | None:
        """The next event, or ``None`` when more data is needed."""
        handler = self._handlers.get(self.state)
        if handler is None:
            raise ForwardProtocolError(f"no input expected in state {self.state.value}")
        item = self._reader.next_object()
        if item is None:
            return None
        try:
            return handler(*item)
        except ForwardProtocolError as exc:
            self.state = State.CLOSED
            raise ForwardProtocolError(
                f"{exc} (request at byte {self._reader.last_frame_offset})"
            ) from None

    def _on_ping(self, obj: Any, size: int) -> ServerEvent:
        assert self.auth is not None
        verdict = check_ping(self.auth, decode_ping(obj), self._nonce, self._user_salt)
        self.state = State.TRANSPORT if verdict.ok else State.CLOSED
        return verdict

    def _on_request(self, obj: Any, size: int) -> ServerEvent:
        return decode_request(obj, size, self.limits)


ClientEvent = Ack | Helo | Pong


class ClientConnection:
    """Sending side of one connection: answers HELO, checks PONG, reports acks.

    ``ready`` turns true once data may be sent (at once without a shared key; after a good
    PONG with one: Fluent Bit discards anything sent behind the PING).
    """

    def __init__(
        self, auth: ClientAuth | None = None, *, salt: bytes = b"", limits: Limits = DEFAULT_LIMITS
    ) -> None:
        if auth is not None and len(salt) < 16:
            raise ValueError("a handshake needs a random salt of at least 16 bytes")
        self.auth = auth
        self._salt = salt
        self._helo: Helo | None = None
        self._reader = ObjectReader(limits)
        self._out = bytearray()
        self.state = State.AWAIT_HELO if auth is not None else State.TRANSPORT
        self._handlers: dict[tuple[State, type], Callable[[Any], None]] = {
            (State.AWAIT_HELO, Helo): self._on_helo,
            (State.AWAIT_PONG, Pong): self._on_pong,
            (State.TRANSPORT, Ack): _ignore,
        }

    @property
    def ready(self) -> bool:
        """True when the transport phase has begun."""
        return self.state is State.TRANSPORT

    def receive_data(self, data: bytes) -> None:
        """Bytes read from the server; ``b""`` when it closed."""
        self._reader.receive_data(data)

    def data_to_send(self) -> bytes:
        """Bytes the protocol wants written now (the PING), then empty."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def next_event(self) -> ClientEvent | None:
        """The next HELO, PONG or ack, or ``None`` when more data is needed."""
        item = self._reader.next_object()
        if item is None:
            return None
        event = decode_response(item[0])
        handler = self._handlers.get((self.state, type(event)))
        if handler is None:
            if type(event) is Helo and self.auth is None:
                raise ForwardProtocolError("server requires a handshake: set a shared key")
            raise ForwardProtocolError(
                f"unexpected {type(event).__name__} in state {self.state.value}"
            )
        handler(event)
        return event

    def _on_helo(self, helo: Helo) -> None:
        assert self.auth is not None
        self._helo = helo
        self._out += answer_helo(self.auth, helo, self._salt)
        self.state = State.AWAIT_PONG

    def _on_pong(self, pong: Pong) -> None:
        assert self.auth is not None and self._helo is not None
        try:
            check_pong(self.auth, pong, self._helo, self._salt)
        except ForwardProtocolError:
            self.state = State.CLOSED
            raise
        self.state = State.TRANSPORT


def _ignore(event: Any) -> None:
    return None
