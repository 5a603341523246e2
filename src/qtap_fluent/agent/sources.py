"""Capture sources: where ``agent.events`` come from. One interface, one registry.

A source is anything iterable that yields ``DataEvent`` / ``CloseEvent`` / ``LostEvent``
(``qtap_fluent.agent.events``) in the order they happened on each connection::

    class Source(Protocol):
        def __iter__(self) -> Iterator[SourceEvent]: ...
        def close(self) -> None: ...          # stop capturing, release resources

Rules for implementers (the eBPF loader ``qtap_fluent.agent.bpf.loader`` and the pcap replay):

* ``conn_id`` is unique per connection for the life of the source (the eBPF source uses the
  kernel socket cookie; the replay numbers TCP streams);
* ``direction`` is seen from the observed process: OUTBOUND = it wrote the bytes;
* ``origin`` is CONNECT/ACCEPT when the socket's creation was seen, else UNKNOWN (the core then
  decides client/server from the first bytes);
* ``ts_ns`` is wall-clock nanoseconds; ``real_len`` is what the syscall moved, ``data`` what
  was captured (a shorter ``data`` is a gap the core handles explicitly);
* ``LostEvent`` reports events dropped before they reached Python (ring buffer overflow);
* the iterator may block waiting for events; it must return when the source ends or after
  ``close()``; a live source should yield at least every second or so (a ``LostEvent`` with
  ``count=0`` is a valid heartbeat) so the runner can evict idle connections on time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from qtap_fluent.agent.events import SourceEvent


class Source(Protocol):
    """What the runner consumes."""

    def __iter__(self) -> Iterator[SourceEvent]: ...

    def close(self) -> None: ...


class ReplaySource:
    """Events reassembled from a pcap/pcapng file (plaintext HTTP over TCP)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __iter__(self) -> Iterator[SourceEvent]:
        from qtap_fluent.agent.replay import events_from_file

        return iter(events_from_file(self.path))

    def close(self) -> None:
        pass


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveOptions:
    """What a live source may filter in the kernel already (the core filters again anyway)."""

    direction: str = "all"
    ignore_loopback: bool = False


def _bpf_source(options: LiveOptions) -> Source:
    # Imported lazily: the loader is the one module that imports bcc (STYLE principle 6).
    # It raises BpfUnavailable (a QtapFluentError: one clear line) when eBPF cannot start.
    from qtap_fluent.agent.bpf.loader import BpfOptions, BpfSource

    return BpfSource(BpfOptions(direction=options.direction,
                                ignore_loopback=options.ignore_loopback))


#: Live sources by name (the replay source is built from ``--replay FILE``).
LIVE_SOURCES: dict[str, Callable[[LiveOptions], Source]] = {"bpf": _bpf_source}
