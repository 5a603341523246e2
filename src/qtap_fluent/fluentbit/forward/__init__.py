"""The Fluent forward protocol: a sans-I/O codec, a reliable client and an asyncio server.

The agent sends transaction records to Fluent Bit with :class:`client.ForwardClient`;
``qtap-fluent serve`` receives from Fluent Bit (or Fluentd, fluent-logger, another agent) with
:class:`server.ForwardServer`. Both speak every part of the protocol real peers use:

=====================  =====================================================================
module                 what it owns
=====================  =====================================================================
``events``             frozen event types, :class:`~.events.EventTime`, the one error class
``encode``             records -> bytes: the four modes, EventTime, options, acks, gzip/zstd
``codec``              bytes -> events: mode table, limits, decompression, replies
``handshake``          HELO/PING/PONG frames and the SHA-512 digests (random values passed in)
``connection``         per-connection state tables for server and client (still no I/O)
``batcher``            records -> PackedForward payloads by count, bytes and age (no I/O)
``spool``              on-disk frames that survive a receiver outage or a restart
``client``             threaded transport: TCP/TLS/unix, acks, pipelining, backoff, spool
``server``             asyncio transport: TCP/TLS/unix, handshake, acks after the consumer
``memory``             opt-in glibc malloc tuning for a process that streams many batches
=====================  =====================================================================

Receiving, the shortest form::

    import asyncio
    from qtap_fluent.fluentbit.forward import ForwardServer

    async def consumer(batch):                 # [(tag, EventTime, record, metadata), ...]
        print(len(batch)); return True         # True = accepted, the peer gets its ack

    async def main():
        server = ForwardServer(consumer, host="127.0.0.1", port=24224)
        await server.serve_forever()

Sending::

    from qtap_fluent.fluentbit.forward import ForwardClient
    with ForwardClient("127.0.0.1", 24224) as client:   # acks on, 4 chunks in flight
        client.emit("app.access", {"status": 200})

Every decoding failure is a :class:`ForwardProtocolError` (a
:class:`qtap_fluent.errors.QtapFluentError`); the server closes only the offending connection.
"""

from __future__ import annotations

from .client import ClientStats, ForwardClient, tls_context
from .codec import DEFAULT_BUFFER_MAX_SIZE, Limits
from .events import EntriesReceived, Entry, EventTime, ForwardProtocolError, Mode
from .handshake import ClientAuth, ServerAuth
from .memory import retain_freed_memory
from .server import ForwardServer, ServerStats, tls_server_context

__all__ = [
    "DEFAULT_BUFFER_MAX_SIZE",
    "ClientAuth",
    "ClientStats",
    "EntriesReceived",
    "Entry",
    "EventTime",
    "ForwardClient",
    "ForwardProtocolError",
    "ForwardServer",
    "Limits",
    "Mode",
    "ServerAuth",
    "ServerStats",
    "retain_freed_memory",
    "tls_context",
    "tls_server_context",
]
