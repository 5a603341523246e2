"""Forward-protocol throughput, side by side in one run (issue 4 targets).

    python3 bench/bench_forward.py [--records 100000] [--repeat 3]
                                   [--part senders|receivers|breakdown]

Part 1, senders into the same receiver (Fluent Bit's forward input with a null output when
``fluent-bit`` is on PATH, else the bare Python receiver below, in its own process):
fluent-logger (Message mode, one event per call), our client without and with acks (one
``emit()`` per record, like fluent-logger, and ``emit_many()`` with 100 records a call, what a
caller holding a batch uses; with acks also with 8 frames in flight instead of 4, and in a
child process that called ``retain_freed_memory()``), with gzip, with zstd, and the ceiling: PackedForward frames of
1,000 records packed before the clock starts and written back to back (no acks), i.e. what the
receiver takes from a sender that costs nothing. A sender's time runs from the first emit until
everything is written (fluent-logger and the ceiling, which have no acks) or acknowledged (our
client).

Part 2, receivers fed by the same sender: pre-encoded Forward-mode frames of 1,000 records
(what Fluent Bit's forward output sends) into (a) a bare asyncio + streaming ``Unpacker``
receiver and (b) our ``ForwardServer`` with a counting consumer, each in its own process. A
receiver's time runs from its first byte to its last record decoded.

Part 3 (``--part breakdown``, not run by default): CPU per record of each layer of our sending
path, back to back in one process: msgspec's encoding alone, the bare append loop every sender
needs, the batcher, and ``emit()`` without socket work.

Records are ~2.2 KB qtap-like HTTP transactions. Prints records/s and the ratios the issue sets
targets for: client-with-acks / fluent-logger >= 4, gzip / fluent-logger >= 1,
our server / bare receiver >= 0.9. Timings are noisy on a shared machine: compare ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import msgpack

HERE = os.path.abspath(__file__)


def make_record(i: int) -> dict[str, Any]:
    """A ~2.2 KB transaction record shaped like qtap's HTTP capture."""
    return {
        "metadata": {"process_id": 4242, "process_exe": "/usr/bin/python3",
                     "bytes_sent": 512, "bytes_received": 1480, "connection_id": f"c{i}"},
        "request": {
            "method": "POST", "url": f"https://api.example.com/v1/items/{i}",
            "protocol": "http/1.1", "authority": "api.example.com",
            "headers": {"content-type": "application/json", "user-agent": "bench/1.0",
                        "accept": "*/*", "x-request-id": f"req-{i:08d}"},
            "body": "x" * 700,
        },
        "response": {
            "status": 200,
            "headers": {"content-type": "application/json", "server": "nginx"},
            "body": "y" * 1100,
        },
        "direction": "egress-external",
    }


# ------------------------------------------------------------------ receivers (subprocesses)


def recv_bare(port: int, total: int) -> None:
    """The baseline: asyncio Protocol + one streaming Unpacker; counts records, sends acks."""
    import zlib

    class Bare(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.t = transport
            self.u = msgpack.Unpacker(raw=False, unicode_errors="surrogateescape")

        def data_received(self, data: bytes) -> None:
            global _count
            if _first is None:
                _mark_first()
            self.u.feed(data)
            for obj in self.u:
                if obj is None:
                    continue
                body = obj[1]
                opts = obj[-1] if isinstance(obj[-1], dict) and len(obj) > 2 else {}
                if isinstance(body, list):
                    _count += len(body)
                elif isinstance(body, (bytes, str)):
                    raw = body if isinstance(body, bytes) else body.encode("utf-8",
                                                                           "surrogateescape")
                    if raw[:2] == b"\x1f\x8b":
                        raw = zlib.decompress(raw, 47)
                    elif raw[:4] == b"\x28\xb5\x2f\xfd":
                        import zstandard
                        raw = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
                    _count += sum(1 for _ in msgpack.Unpacker(raw_bytes_io(raw), raw=False))
                else:
                    _count += 1
                if "chunk" in opts:
                    self.t.write(msgpack.packb({"ack": opts["chunk"]}))
            _check_done(total)

    _serve(lambda: Bare(), port)


def raw_bytes_io(data: bytes) -> Any:
    import io
    return io.BytesIO(data)


def recv_ours(port: int, total: int) -> None:
    """Our ForwardServer with a consumer that only counts."""
    from qtap_fluent.fluentbit.forward.server import ForwardServer

    async def consumer(batch: list[Any]) -> bool:
        global _count
        _count += len(batch)
        _check_done(total)
        return True

    async def run() -> None:
        server = ForwardServer(consumer, host="127.0.0.1", port=port)
        await server.start()
        print("ready", flush=True)
        # first-byte time: wrap the protocol factory's data_received via a tiny hook
        from qtap_fluent.fluentbit.forward import server as srvmod

        orig = srvmod._Conn.data_received

        def hooked(self: Any, data: bytes) -> None:
            if _first is None:
                _mark_first()
            orig(self, data)

        srvmod._Conn.data_received = hooked  # type: ignore[method-assign]
        await asyncio.Event().wait()

    asyncio.run(run())


_first: float | None = None
_first_cpu = 0.0
_count = 0


def _mark_first() -> None:
    global _first, _first_cpu
    _first, _first_cpu = time.perf_counter(), time.process_time()


def _check_done(total: int) -> None:
    if _count >= total and _first is not None:
        elapsed = time.perf_counter() - _first
        cpu = time.process_time() - _first_cpu
        print(f"done {_count} {elapsed:.6f} {cpu:.6f}", flush=True)
        os._exit(0)


def _serve(factory: Any, port: int) -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_server(factory, "127.0.0.1", port)
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


# ------------------------------------------------------------------ driver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(role: str, port: int, total: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, HERE, "--role", role, "--port", str(port),
                             "--records", str(total)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def finish(proc: subprocess.Popen[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) the receiver process spent on the records."""
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    proc.wait(60)
    assert line and line[0] == "done", line
    return float(line[2]), float(line[3])


def start_fluent_bit(port: int, workdir: str) -> subprocess.Popen[bytes] | None:
    exe = shutil.which("fluent-bit")
    if exe is None:
        return None
    conf = os.path.join(workdir, "fb.conf")
    with open(conf, "w") as fh:
        fh.write(f"[SERVICE]\n    Flush 1\n    Log_Level error\n[INPUT]\n    Name forward\n"
                 f"    Listen 127.0.0.1\n    Port {port}\n[OUTPUT]\n    Name null\n"
                 f"    Match *\n")
    proc = subprocess.Popen([exe, "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    return None


def send_fluent_logger(port: int, records: list[dict[str, Any]]) -> tuple[float, float]:
    from fluent import sender

    s = sender.FluentSender("bench", host="127.0.0.1", port=port, bufmax=64 << 20)
    t0, c0 = time.perf_counter(), time.process_time()
    for rec in records:
        s.emit("fl", rec)
    s.close()
    return time.perf_counter() - t0, time.process_time() - c0


def send_ours(port: int, records: list[dict[str, Any]], many: int = 0,
              **kw: Any) -> tuple[float, float]:
    from qtap_fluent.fluentbit.forward.client import ForwardClient

    client = ForwardClient("127.0.0.1", port, queue_max_records=20_000, **kw)
    t0, c0 = time.perf_counter(), time.process_time()
    if many:
        for i in range(0, len(records), many):
            client.emit_many("ours", [(None, rec) for rec in records[i:i + many]])
    else:
        for rec in records:
            client.emit("ours", rec)
    ok = client.flush(120)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    client.close()
    LAST_STATS.clear()
    LAST_STATS.update(client.stats.as_dict())
    delivered = client.stats.acked_records if kw.get("require_ack", True) else \
        client.stats.sent_records
    assert ok and delivered == len(records), client.stats
    return elapsed, cpu


#: The counters of the last ``send_ours`` client (how often it waited for acks).
LAST_STATS: dict[str, int] = {}


def send_ours_retaining(port: int, n: int) -> tuple[float, float]:
    """``send_ours`` with acks in a child process that called ``retain_freed_memory()``
    first (it changes malloc for the whole process, so not in this one)."""
    proc = subprocess.Popen([sys.executable, HERE, "--role", "send-retain", "--port", str(port),
                             "--records", str(n)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    proc.wait(120)
    assert line and line[0] == "done", line
    LAST_STATS.update(window_full=int(line[3]), sent_chunks=int(line[4]))
    return float(line[1]), float(line[2])


def role_send_retain(port: int, n: int) -> None:
    from qtap_fluent.fluentbit.forward.memory import retain_freed_memory

    records = [make_record(i) for i in range(n)]
    assert retain_freed_memory(), "no glibc mallopt"
    send_ours(port, records[: n // 2])  # warm-up, as the in-process senders had one
    elapsed, cpu = send_ours(port, records)
    print(f"done {elapsed:.6f} {cpu:.6f} {LAST_STATS['window_full']} "
          f"{LAST_STATS['sent_chunks']}", flush=True)


def packed_frames(records: list[dict[str, Any]], per_frame: int = 1000) -> list[bytes]:
    """PackedForward frames of ``per_frame`` records, no options: the cheapest possible send."""
    from qtap_fluent.fluentbit.forward import encode
    from qtap_fluent.fluentbit.forward.events import EventTime

    t = EventTime(1700000000, 0)
    return [encode.encode_packed_forward(
        "ceiling", b"".join(encode.pack_entry(t, r) for r in records[i:i + per_frame]))
        for i in range(0, len(records), per_frame)]


def send_blast(port: int, frames: list[bytes]) -> tuple[float, float]:
    """The ceiling: frames packed beforehand, written back to back with sendall()."""
    t0, c0 = time.perf_counter(), time.process_time()
    blast(port, frames)
    return time.perf_counter() - t0, time.process_time() - c0


def forward_frames(records: list[dict[str, Any]], per_frame: int = 1000) -> list[bytes]:
    from qtap_fluent.fluentbit.forward import codec
    from qtap_fluent.fluentbit.forward.events import EventTime

    t = EventTime(1700000000, 0)
    return [codec.encode_forward("fb", [(t, r) for r in records[i:i + per_frame]])
            for i in range(0, len(records), per_frame)]


def blast(port: int, frames: list[bytes]) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        for frame in frames:
            sock.sendall(frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per line; best is shown")
    parser.add_argument("--part", choices=["senders", "receivers", "breakdown"],
                        help="run only one part (default: senders and receivers)")
    parser.add_argument("--role", choices=["recv-bare", "recv-ours", "send-retain"])
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    if args.role == "recv-bare":
        return recv_bare(args.port, args.records)
    if args.role == "recv-ours":
        return recv_ours(args.port, args.records)
    if args.role == "send-retain":
        return role_send_retain(args.port, args.records)

    n = args.records
    records = [make_record(i) for i in range(n)]
    size = len(msgpack.packb(records[0]))
    print(f"{n} records of {size} bytes (msgpack); CPUs: {os.cpu_count()}")
    if args.part == "breakdown":
        return breakdown_part(args, records[:30_000])
    if args.part != "receivers":
        senders_part(args, records)
    if args.part != "senders":
        receivers_part(args, records)
    return None


def senders_part(args: argparse.Namespace, records: list[dict[str, Any]]) -> None:
    """Part 1: every sender into the same receiver, interleaved runs; best and median of each,
    and ratios both of the best runs and as the median of each round's own ratio (the two
    senders of one round saw the same load)."""
    n = len(records)
    rounds: list[dict[str, tuple[float, float]]] = []  # per round: name -> (rec/s, rec/CPU-s)
    waits: dict[str, list[str]] = {}  # our senders: window_full / sent_chunks per round
    with tempfile.TemporaryDirectory() as work:
        port = free_port()
        fb = start_fluent_bit(port, work)
        where = "Fluent Bit forward input -> null" if fb else "bare Python receiver"
        print(f"\n-- senders into: {where}")
        frames = packed_frames(records)
        senders: list[tuple[str, Any]] = [
            ("fluent-logger", lambda p: send_fluent_logger(p, records)),
            (CEILING, lambda p: send_blast(p, frames)),
            ("ours, no acks", lambda p: send_ours(p, records, require_ack=False)),
            ("ours, acks", lambda p: send_ours(p, records)),
            ("ours, acks, max_in_flight=8", lambda p: send_ours(p, records, max_in_flight=8)),
            ("ours, acks, retain_freed_memory()", lambda p: send_ours_retaining(p, n)),
            ("ours, acks, emit_many(100)", lambda p: send_ours(p, records, many=100)),
            ("ours, gzip + acks", lambda p: send_ours(p, records, compress="gzip")),
            ("ours, zstd + acks", lambda p: send_ours(p, records, compress="zstd")),
        ]
        try:
            for _ in range(args.repeat):  # interleaved, so load changes hit every sender
                rounds.append({})
                for name, fn in senders:
                    if fb is None:
                        port = free_port()
                        proc = spawn("recv-bare", port, n)
                    LAST_STATS.clear()
                    elapsed, cpu = fn(port)
                    if fb is None:
                        finish(proc)
                    rounds[-1][name] = (n / elapsed, n / max(cpu, 1e-9))
                    if LAST_STATS:
                        waits.setdefault(name, []).append(
                            f"{LAST_STATS['window_full']}/{LAST_STATS['sent_chunks']}")
        finally:
            if fb is not None:
                fb.terminate()
                fb.wait(10)

    def best(name: str, i: int) -> float:
        return max(r[name][i] for r in rounds)

    print(f"{'sender':40s} {'records/s':>12s} {'median':>10s} {'records/CPU-s':>14s}")
    for name, _ in senders:
        med = statistics.median(r[name][0] for r in rounds)
        print(f"{name:40s} {best(name, 0):>12,.0f} {med:>10,.0f} {best(name, 1):>14,.0f}")

    def ratio(a: str, b: str) -> str:
        per_round = statistics.median(r[a][0] / r[b][0] for r in rounds)
        return (f"wall {best(a, 0) / best(b, 0):.2f} (median of rounds {per_round:.2f}), "
                f"CPU {best(a, 1) / best(b, 1):.2f}")

    print("times the send window was full (chunks waited for acks) / chunks sent, per round:")
    for name, counts in waits.items():
        print(f"  {name:38s} {'  '.join(counts)}")
    print("ratios of the best runs:")
    print(f"ratio ours acks / fluent-logger: {ratio('ours, acks', 'fluent-logger')}"
          "  (target >= 4)")
    print(f"ratio ceiling / fluent-logger: {ratio(CEILING, 'fluent-logger')}"
          "  (what this receiver takes from a sender that only writes)")
    print(f"ratio ours acks / ceiling: {ratio('ours, acks', CEILING)}")
    print(f"ratio ours gzip / fluent-logger: {ratio('ours, gzip + acks', 'fluent-logger')}"
          "  (target >= 1)")
    print(f"ratio ours zstd / fluent-logger: {ratio('ours, zstd + acks', 'fluent-logger')}")
    print(f"ratio ours acks emit_many / fluent-logger: "
          f"{ratio('ours, acks, emit_many(100)', 'fluent-logger')}")
    print(f"ratio ours acks / ours no acks: {ratio('ours, acks', 'ours, no acks')}")
    print(f"ratio ours acks, max_in_flight=8 / ceiling: "
          f"{ratio('ours, acks, max_in_flight=8', CEILING)}")
    print(f"ratio ours acks, retain_freed_memory() / fluent-logger: "
          f"{ratio('ours, acks, retain_freed_memory()', 'fluent-logger')}  (target >= 4)")
    print(f"ratio ours acks, retain_freed_memory() / ceiling: "
          f"{ratio('ours, acks, retain_freed_memory()', CEILING)}")


CEILING = "ceiling: pre-packed blast, no acks"


def breakdown_part(args: argparse.Namespace, records: list[dict[str, Any]]) -> None:
    """Part 3: CPU per record of each layer of our sending path, measured back to back in
    this process (thread CPU time, best and median of ``--repeat``): where the microseconds
    of ``emit()`` go, without a receiver."""
    import resource
    import struct

    from qtap_fluent.fluentbit.forward.batcher import Batcher, Chunk, default_encode_into
    from qtap_fluent.fluentbit.forward.client import ForwardClient

    encode_into = default_encode_into()
    if encode_into is None:
        print("\n-- breakdown needs msgspec")
        return
    n = len(records)
    head = struct.Struct(">3sII").pack

    def encode_only() -> None:
        buf = bytearray()
        for rec in records:
            encode_into(rec, buf, 0)

    def append_loop() -> None:  # what every sender has to do: time, head, record, in place
        buf, count, keep = bytearray(), 0, list[bytearray]()
        for rec in records:
            sec, nsec = divmod(time.time_ns(), 1_000_000_000)
            buf += head(b"\x92\xd7\x00", sec, nsec)
            encode_into(rec, buf, -1)
            count += 1
            if count == 476:  # ~1 MiB of 2.2 KB records
                keep = [*keep[-5:], buf]
                buf, count = bytearray(), 0

    def batcher() -> None:
        b, keep = Batcher(), list[Chunk]()
        for rec in records:
            sec, nsec = divmod(time.time_ns(), 1_000_000_000)
            for chunk in b.add_record("x", sec, nsec, rec, time.monotonic()):
                keep = [*keep[-5:], chunk]

    class NoIO(ForwardClient):
        """Sealed chunks are kept a while and dropped: emit() without the socket work."""

        held: tuple[Chunk, ...] = ()

        def _enqueue(self, chunk: Chunk) -> None:
            self.held = (*self.held[-5:], chunk)

    client = NoIO("127.0.0.1", free_port(), backoff_base=60, backoff_max=60)

    def emit_no_io() -> None:
        for rec in records:
            client.emit("x", rec)

    batches = [[(None, rec) for rec in records[i:i + 100]] for i in range(0, n, 100)]

    def emit_many_no_io() -> None:
        for batch in batches:
            client.emit_many("x", batch)

    steps = [("msgspec encode_into, reused buffer", encode_only),
             ("+ time, entry head, append in place", append_loop),
             ("Batcher.add_record", batcher),
             ("ForwardClient.emit (no socket work)", emit_no_io),
             ("ForwardClient.emit_many(100) (no socket)", emit_many_no_io)]
    cpu: dict[str, list[float]] = {name: [] for name, _ in steps}
    for _ in range(args.repeat):
        for name, fn in steps:
            r0 = resource.getrusage(resource.RUSAGE_THREAD)
            fn()
            r1 = resource.getrusage(resource.RUSAGE_THREAD)
            used = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
            cpu[name].append(used / n * 1e6)
    client.close(timeout=0)
    print("\n-- CPU per record of each layer (us, thread CPU time; compare with 1e6 / the"
          " records/CPU-s of 'ours, acks' above, which adds the socket work)")
    for name, _ in steps:
        print(f"{name:40s} best {min(cpu[name]):6.2f}   median "
              f"{statistics.median(cpu[name]):6.2f}")


def receivers_part(args: argparse.Namespace, records: list[dict[str, Any]]) -> None:
    """Part 2: the same pre-encoded frames into the bare receiver and into our server, in
    alternating rounds; best and median of each, and the median of each round's own ratio."""
    n = len(records)
    print("\n-- receivers fed Forward-mode frames of 1,000 records (Fluent Bit's shape)")
    frames = forward_frames(records)
    roles = (("recv-bare", "bare asyncio + Unpacker"), ("recv-ours", "ForwardServer"))
    rounds: list[dict[str, tuple[float, float]]] = []  # per round: role -> (rec/s, rec/CPU-s)
    for _ in range(max(2, args.repeat)):
        rounds.append({})
        for role, _name in roles:
            port = free_port()
            proc = spawn(role, port, n)
            blast(port, frames)
            w, c = finish(proc)
            rounds[-1][role] = (n / w, n / c)
    print(f"{'receiver':40s} {'records/s':>12s} {'median':>10s} {'records/CPU-s':>14s} "
          f"{'median':>10s}")
    for role, name in roles:
        cols = [f(r[role][i] for r in rounds) for i in (0, 1) for f in (max, statistics.median)]
        print(f"{name:40s} {cols[0]:>12,.0f} {cols[1]:>10,.0f} {cols[2]:>14,.0f} {cols[3]:>10,.0f}")
    wall = [r["recv-ours"][0] / r["recv-bare"][0] for r in rounds]
    cpu = [r["recv-ours"][1] / r["recv-bare"][1] for r in rounds]
    print(f"ratio our server / bare receiver: wall median of rounds {statistics.median(wall):.2f}"
          f" (rounds {', '.join(f'{x:.2f}' for x in wall)}), CPU median of rounds "
          f"{statistics.median(cpu):.2f} (rounds {', '.join(f'{x:.2f}' for x in cpu)})"
          "  (target >= 0.90)")

if __name__ == "__main__":
    main()
