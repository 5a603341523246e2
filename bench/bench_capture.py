"""Capture core throughput: data events -> Qtap records (tracker, parsers, policy, encoding).

CPU time of this process (time.process_time) is measured, so other load on the machine
skews less. Runs beside its peer on the same bytes: httptools' bare parse rate (the llhttp limit the core
can approach). Prints transactions/s for small HTTP/1.1 keep-alive exchanges and for
multiplexed HTTP/2, the ratio to the bare parser, and memory per open connection.

The target (issue 5: >= 30,000 small HTTP/1.1 tx/s on the machine where bare httptools parsed
~1,060,000 request+response pairs/s) is also printed as a ratio, TARGET_RATIO = 30,000 /
1,060,000: core tx/s divided by bare pairs/s, each core run paired with a bare run made just
before it (the median of five pairs: adjacent runs share the machine's load, so their ratio
swings less than absolute rates; a best-of would pick the luckiest pair), so a reader on a faster or slower machine sees whether the target
holds there. Absolute tx/s are printed too. For before/after decisions on a shared machine,
count instructions instead (valgrind --tool=callgrind, Ir per transaction).

    python3 bench/bench_capture.py [--n 10000]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httptools

from qtap_fluent import records
from qtap_fluent.agent.events import Address, DataEvent, Direction, Origin
from qtap_fluent.agent.policy import HttpCapture, Policy
from qtap_fluent.agent.runner import Runner
from qtap_fluent.redact import Redactor
from qtap_fluent.sinks.base import Result

REQ = (b"GET /api/v1/items/42?x=1 HTTP/1.1\r\nHost: api.example.com\r\n"
       b"User-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n")
RES = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 27\r\n"
       b"Date: Fri, 27 Nov 2026 08:00:00 GMT\r\n\r\n{\"id\":42,\"name\":\"widget-1\"}")
#: Issue 5: 30,000 tx/s where bare httptools parsed 1,060,000 pairs/s (the rate-independent target).
TARGET_RATIO = 30_000 / 1_060_000
#: Slices per paired run (see ``core_rate``).
SLICES = 20
BARE_FACTOR = 5
LOCAL, REMOTE = Address(ip="10.0.0.5", port=40000), Address(ip="93.184.216.34", port=80)


class NullOutput:
    name = "null"

    def __init__(self) -> None:
        self.n = 0
        self.bytes = 0

    def open(self) -> None:
        pass

    def write(self, record: dict[str, Any], line: str, time_ns: int) -> Result:
        self.n += 1
        self.bytes += len(line)
        return Result.OK

    def close(self) -> Result:
        return Result.OK


def ev(conn: int, direction: Direction, data: bytes, ts: int) -> DataEvent:
    return DataEvent(conn_id=conn, pid=1000 + conn % 50, tid=1, exe="/usr/bin/curl",
                     direction=direction, local=LOCAL, remote=REMOTE, origin=Origin.CONNECT,
                     tls=False, ts_ns=ts, data=data, real_len=len(data))


#: The same request carrying a credential: the redactor masks it (its slower, changing path).
REQ_SECRET = REQ.replace(b"Accept: */*\r\n", b"Accept: */*\r\nAuthorization: Bearer abc\r\n")


def http1_events(n: int, conns: int = 100, req: bytes = REQ) -> list[DataEvent]:
    out = []
    ts = 1_767_225_600_000_000_000
    for i in range(n):
        c = i % conns
        out.append(ev(c, Direction.OUTBOUND, req, ts))
        out.append(ev(c, Direction.INBOUND, RES, ts + 1_000_000))
        ts += 10_000
    return out


def http2_events(n: int, streams_per_burst: int = 10) -> list[DataEvent]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.agent.h2wire import PREFACE, Side, request

    out: list[DataEvent] = []
    ts = 1_767_225_600_000_000_000
    conn = 0
    done = 0
    while done < n:
        conn += 1
        c, s = Side(), Side()
        out.append(ev(conn, Direction.OUTBOUND, PREFACE + c.settings(), ts))
        out.append(ev(conn, Direction.INBOUND, s.settings(), ts))
        sid = 1
        for _burst in range(10):
            cb = b"".join(c.headers(sid + 2 * k, request(0, f"/item/{k}",
                                                         authority="api.example.com"),
                                    end_stream=True) for k in range(streams_per_burst))
            sb = b"".join(s.headers(sid + 2 * k, [(":status", "200"),
                                                  ("content-type", "application/json")])
                          + s.data(sid + 2 * k, b'{"id":%d}' % k, end_stream=True)
                          for k in range(streams_per_burst))
            out.append(ev(conn, Direction.OUTBOUND, cb, ts))
            out.append(ev(conn, Direction.INBOUND, sb, ts + 1_000_000))
            sid += 2 * streams_per_burst
            done += streams_per_burst
            ts += 10_000
    return out


def core_rate(events: list[DataEvent], redact: bool, level: str = "full",
              paired: int = 0) -> tuple[float, int, float]:
    """The best rate of several runs (the machine is shared: the best run is the least
    disturbed), the transactions per run, and the median over runs of the ratio to bare
    httptools interleaved with it (0.0 when not ``paired``).

    Pairing: each run is cut into SLICES slices of events, and before each slice the bare
    parser runs ``BARE_FACTOR * paired / SLICES`` pairs (a few ms: llhttp alone is ~35x
    faster than the core); each side's CPU time is summed over its slices.
    The two sides then share the machine's mood at the scale of tens of milliseconds: on
    this VM the speed swings by up to 2x from one second to the next, and a bare run made
    once before a whole core run (the earlier pairing) gave ratios from 0.79x to 1.07x of
    the target for the same code in two runs a minute apart."""
    best, n, ratios = 0.0, 0, []
    step = max(1, len(events) // SLICES)
    for _ in range(5 if paired else 3):
        pol = Policy(stacks={"s": HttpCapture(level=level)}, http_stack="s",
                     redactor=Redactor() if redact else None)
        out = NullOutput()
        runner = Runner(pol, out)
        bare_pairs, bare_dt, dt = 0, 0.0, 0.0
        gc.collect()
        for lo in range(0, len(events), step):
            if paired:
                k = max(1, BARE_FACTOR * paired // SLICES)
                bare_dt += k / _bare_once(k)
                bare_pairs += k
            part = events[lo:lo + step]
            t0 = time.process_time()
            runner.feed(part)  # as Runner.run and the live sources feed it
            dt += time.process_time() - t0
        best, n = max(best, out.n / dt), out.n
        if paired:
            ratios.append(out.n / dt / (bare_pairs / bare_dt))
    return best, n, statistics.median(ratios) if ratios else 0.0


class _Count:
    def __init__(self) -> None:
        self.n = 0

    def on_message_complete(self) -> None:
        self.n += 1


def httptools_rate(n: int) -> float:
    """llhttp alone on the same bytes: one request and one response parser per connection
    (best of three)."""
    return max(_bare_once(n) for _ in range(3))


def _bare_once(n: int) -> float:
    cb_req, cb_res = _Count(), _Count()
    conns = [(httptools.HttpRequestParser(cb_req), httptools.HttpResponseParser(cb_res))
             for _ in range(100)]
    t0 = time.process_time()
    for i in range(n):
        rq, rs = conns[i % 100]
        rq.feed_data(REQ)
        rs.feed_data(RES)
    dt = time.process_time() - t0
    assert cb_res.n == n
    return n / dt


def memory_per_connection(n: int = 5000) -> float:
    """Bytes per tracked connection holding one parsed request that awaits its response."""
    pol = Policy(stacks={"s": HttpCapture(level="full")}, http_stack="s")
    runner = Runner(pol, NullOutput())
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for c in range(n):
        runner.process(ev(c, Direction.OUTBOUND, REQ, 1_767_225_600_000_000_000 + c))
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(runner.tracker.conns) == n
    return (after - before) / n


def _ratio(r: float) -> str:
    """The normalised figure (core tx/s over bare llhttp pairs/s) against the target ratio."""
    verdict = "meets" if r >= TARGET_RATIO else "misses"
    return f"ratio {r:.4f} vs target {TARGET_RATIO:.4f}: {verdict} ({r / TARGET_RATIO:.2f}x)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000, help="transactions per run")
    args = ap.parse_args()
    n = args.n
    print(f"record JSON encoder: {records.map_to_json.__qualname__}"
          " (orjson when installed, else the stdlib encoder)")
    h1 = http1_events(n)
    bare = httptools_rate(n)
    print(f"httptools bare parse (req+res pairs/s):      {bare:12,.0f}")
    print(f"target: core tx/s / bare pairs/s >= {TARGET_RATIO:.4f} (30,000 / 1,060,000),"
          f" i.e. >= {TARGET_RATIO * bare:,.0f} tx/s on this machine now")
    for redact in (False, True):
        rate, got, ratio = core_rate(h1, redact, paired=n)
        assert got == n
        print(f"HTTP/1.1 core, level full, redact={redact!s:5}:   {rate:12,.0f} tx/s"
              f"   {_ratio(ratio)}")
    rate, got, ratio = core_rate(http1_events(n, req=REQ_SECRET), True, paired=n)
    assert got == n
    print(f"HTTP/1.1 core, full, redact, Authorization: {rate:12,.0f} tx/s   {_ratio(ratio)}")
    rate, _, ratio = core_rate(h1, False, level="summary", paired=n)
    print(f"HTTP/1.1 core, level summary, no redaction:  {rate:12,.0f} tx/s   {_ratio(ratio)}")
    h2 = http2_events(n // 2)
    rate, got, _ = core_rate(h2, False)
    print(f"HTTP/2 multiplexed (10 streams/burst), full: {rate:12,.0f} tx/s  ({got} tx)")
    print(f"memory per open connection (1 pending req):  {memory_per_connection():12,.0f} bytes")


if __name__ == "__main__":
    main()
