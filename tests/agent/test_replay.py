"""pcap/pcapng reader and TCP reassembly on synthetic captures (real tcpdump: test_capture_real)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qtap_fluent.agent.events import CloseEvent, DataEvent, Direction, Origin
from qtap_fluent.agent.replay import ReplayError, events_from_bytes
from tests.agent.pcapwrite import Pkt, pcap, pcapng

C, S = ("10.0.0.1", 40000), ("10.0.0.2", 80)
REQ = b"GET /r HTTP/1.1\r\nHost: a\r\n\r\n"
RES = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
SYN, ACK, FIN, PSH = 2, 16, 1, 8


def conversation(isn_c: int = 1000, isn_s: int = 5000, c: tuple[str, int] = C,
                 s: tuple[str, int] = S) -> list[Pkt]:
    return [
        Pkt(1_000, c, s, isn_c, SYN), Pkt(2_000, s, c, isn_s, SYN | ACK),
        Pkt(3_000, c, s, isn_c + 1, ACK),
        Pkt(4_000, c, s, isn_c + 1, PSH | ACK, REQ),
        Pkt(5_000, s, c, isn_s + 1, PSH | ACK, RES),
        Pkt(6_000, c, s, isn_c + 1 + len(REQ), FIN | ACK),
        Pkt(7_000, s, c, isn_s + 1 + len(RES), FIN | ACK),
    ]


def data_of(events: Sequence[object]) -> list[tuple[Direction, bytes, int]]:
    return [(e.direction, e.data, e.real_len) for e in events if isinstance(e, DataEvent)]


@pytest.mark.parametrize("fmt", ["pcap-eth", "pcap-ns-big", "pcap-sll", "pcap-sll2", "pcap-raw",
                                 "pcapng-ns", "pcapng-us"])
def test_formats_and_link_types(fmt: str) -> None:
    pkts = conversation()
    data = {
        "pcap-eth": lambda: pcap(pkts), "pcap-ns-big": lambda: pcap(pkts, nanos=True, big=True),
        "pcap-sll": lambda: pcap(pkts, 113), "pcap-sll2": lambda: pcap(pkts, 276),
        "pcap-raw": lambda: pcap(pkts, 101), "pcapng-ns": lambda: pcapng(pkts),
        "pcapng-us": lambda: pcapng(pkts, tsresol=6),
    }[fmt]()
    events = list(events_from_bytes(data))
    assert data_of(events) == [(Direction.OUTBOUND, REQ, len(REQ)),
                               (Direction.INBOUND, RES, len(RES))]
    first = events[0]
    assert isinstance(first, DataEvent) and first.origin is Origin.CONNECT
    assert first.local is not None and (first.local.ip, first.local.port) == C
    assert first.ts_ns == 4_000
    assert isinstance(events[-1], CloseEvent)


def test_ipv6_and_sequence_wraparound() -> None:
    c6, s6 = ("fd00::1", 40000), ("fd00::2", 8080)
    pkts = conversation(isn_c=(1 << 32) - 10, c=c6, s=s6)
    events = list(events_from_bytes(pcap(pkts)))
    assert data_of(events)[0] == (Direction.OUTBOUND, REQ, len(REQ))
    assert events[0].remote.ip == "fd00::2"  # type: ignore[union-attr]


def test_out_of_order_and_retransmission() -> None:
    a, b = REQ[:10], REQ[10:]
    pkts = [Pkt(1, C, S, 99, SYN), Pkt(2, C, S, 100 + 10, ACK, b), Pkt(3, C, S, 100, ACK, a),
            Pkt(4, C, S, 100, ACK, a), Pkt(5, C, S, 105, ACK, REQ[5:])]
    assert b"".join(d for _, d, _ in data_of(list(events_from_bytes(pcap(pkts))))) == REQ


def test_hole_becomes_explicit_gap_at_close() -> None:
    pkts = [Pkt(1, C, S, 99, SYN), Pkt(2, C, S, 100, ACK, REQ[:10]),
            Pkt(3, C, S, 100 + 20, ACK, REQ[20:]), Pkt(4, C, S, 100 + len(REQ), FIN | ACK)]
    got = data_of(list(events_from_bytes(pcap(pkts))))
    assert got == [(Direction.OUTBOUND, REQ[:10], 10), (Direction.OUTBOUND, b"", 10),
                   (Direction.OUTBOUND, REQ[20:], len(REQ) - 20)]


def test_without_syn_origin_is_unknown() -> None:
    pkts = conversation()[3:5]
    first = next(iter(events_from_bytes(pcap(pkts))))
    assert isinstance(first, DataEvent) and first.origin is Origin.UNKNOWN


@pytest.mark.parametrize("blob,message", [(b"hello world, not a capture", "magic"),
                                          (b"\xd4\xc3\xb2\xa1\x02\x00", "truncated")])
def test_bad_files_are_clear_errors(blob: bytes, message: str) -> None:
    with pytest.raises(ReplayError, match=message):
        list(events_from_bytes(blob))


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_reassembly_is_order_and_duplicate_invariant(data: st.DataObject) -> None:
    """Segments reordered (within the out-of-order bound) and retransmitted, with any
    overlap, give the same byte stream."""
    payload = bytes(range(256)) * 3
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(payload) - 1), max_size=12))))
    bounds = list(zip([0, *cuts], [*cuts, len(payload)], strict=True))
    segs = [Pkt(10 + i, C, S, 100 + a, ACK, payload[a:b]) for i, (a, b) in enumerate(bounds)]
    extra = data.draw(st.lists(st.sampled_from(segs), max_size=5))  # retransmissions
    overlap = [Pkt(50, C, S, 100 + a, ACK, payload[a:min(b + 7, len(payload))])
               for a, b in bounds[:2]]
    order = data.draw(st.permutations(segs + extra + overlap))
    pkts = [Pkt(1, C, S, 99, SYN), *order, Pkt(99, C, S, 100 + len(payload), FIN | ACK)]
    got = [e for e in events_from_bytes(pcap(pkts)) if isinstance(e, DataEvent)]
    assert b"".join(e.data for e in got) == payload
    assert all(e.real_len == len(e.data) for e in got)  # nothing was lost
