"""Records/s through ``serve`` into file and into S3 (moto), next to peers, bottleneck named.

Run: ``python3 bench/bench_serve.py [--records 40000] [--chunk 1000]``. Short by design (2 cores
shared): every target receives the same pre-encoded Forward-mode chunks over one TCP
connection, waiting for each chunk's ack (Fluent Bit's ``Require_ack_response``), and we time
first byte to last ack. Peers in the same run:

* ``bare-forward``: A's ForwardServer with a consumer that returns True (no filters, no sink):
  the ceiling serve can reach with this transport.
* ``fluent-bit``: ``fluent-bit -i forward -o file`` when a binary is on PATH.

Then the serve pipeline is profiled in-process (cProfile) for the file and the S3 spool paths
and the top functions are printed: that names the bottleneck.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgpack

from qtap_fluent.fluentbit.forward.codec import encode_forward

ENV = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
       "AWS_DEFAULT_REGION": "us-east-1"}

BARE = """
import asyncio, sys
from qtap_fluent.fluentbit.forward.server import ForwardServer
async def ok(batch): return True
async def main():
    s = ForwardServer(ok, host="127.0.0.1", port=int(sys.argv[1]))
    await s.start()
    print("ready", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def record(i: int) -> dict[str, Any]:
    return {"metadata": {"process_exe": "/usr/bin/curl", "connection_id": f"c{i}"},
            "request": {"method": "GET", "url": f"https://api.test/items/{i}?page=2",
                        "headers": {"User-Agent": "curl/8", "Accept": "*/*",
                                    "Authorization": "Bearer abc"}},
            "response": {"status": 200, "content_type": "application/json",
                         "headers": {"Content-Length": "120"}},
            "transaction_time": "2025-10-23T16:07:41.023379679Z", "duration_ms": 12,
            "direction": "egress-external"}


def chunks(n: int, size: int) -> list[tuple[str, bytes]]:
    out = []
    for start in range(0, n, size):
        cid = secrets.token_hex(8)
        out.append((cid, encode_forward("qtap.http", [(1.7e9, record(i)) for i in
                                                      range(start, min(n, start + size))],
                                        chunk=cid)))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def send_all(port: int, frames: list[tuple[str, bytes]]) -> float:
    sock = socket.create_connection(("127.0.0.1", port))
    unpacker = msgpack.Unpacker(raw=False)
    t0 = time.perf_counter()
    for cid, frame in frames:
        sock.sendall(frame)
        acked = False
        while not acked:
            for obj in unpacker:
                acked = obj.get("ack") == cid
                break
            else:
                data = sock.recv(65536)
                if not data:
                    raise RuntimeError("connection closed before ack")
                unpacker.feed(data)
    elapsed = time.perf_counter() - t0
    sock.close()
    return elapsed


def run_target(cmd: list[str], port: int, frames: list[tuple[str, bytes]],
               repeat: int = 3) -> float:
    """Median seconds over ``repeat`` fresh processes (the machine is shared: noise is high)."""
    times = sorted(_run_once(cmd, port, frames) for _ in range(repeat))
    return times[len(times) // 2]


def _run_once(cmd: list[str], port: int, frames: list[tuple[str, bytes]]) -> float:
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        return send_all(port, frames)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def profile_pipeline(kind: str, tmp: Path, endpoint: str, n: int, size: int) -> str:
    """Top functions of Pipeline.deliver for ``kind`` (in-process, cProfile)."""
    from qtap_fluent.serve.match import TagMatcher
    from qtap_fluent.serve.pipeline import OutputStage, Pipeline
    from qtap_fluent.sinks.file import FileSink
    from qtap_fluent.sinks.s3 import S3Sink, make_client

    if kind == "file":
        sink: Any = FileSink(path=tmp / "prof.jsonl")
    else:
        client = make_client(endpoint=endpoint)
        client.create_bucket(Bucket="prof")
        sink = S3Sink(client=client, bucket="prof", spool_dir=tmp / "prof-spool",
                      compression="gzip")
    p = Pipeline([], [OutputStage(kind, TagMatcher("*"), sink)])
    p.open()
    batches = [[("qtap.http", 1.7e9, record(i)) for i in range(s, s + size)]
               for s in range(0, n, size)]
    prof = cProfile.Profile()
    prof.enable()
    for b in batches:
        p.deliver(b)
    p.close()
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(6)
    lines = [ln for ln in buf.getvalue().splitlines() if ln.strip()]
    start = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls"))
    return "\n".join(lines[start:start + 7])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=40_000)
    ap.add_argument("--chunk", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3, help="runs per target; the median counts")
    args = ap.parse_args()
    os.environ.update(ENV)  # moto's dummy credentials for the in-process clients too
    frames = chunks(args.records, args.chunk)
    mb = sum(len(f) for _, f in frames) / 1e6
    print(f"{args.records} records in {len(frames)} chunks, {mb:.1f} MB of forward frames")
    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    moto_port = free_port()
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(moto_port)], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{moto_port}"
    results: dict[str, float] = {}
    try:
        wait_port(moto_port)
        from qtap_fluent.sinks.s3 import make_client

        make_client(endpoint=endpoint).create_bucket(Bucket="bench")
        serve = [sys.executable, "-m", "qtap_fluent.serve", "--log-level", "warning"]
        port = free_port()
        results["bare-forward (peer)"] = run_target(
            [sys.executable, "-c", BARE, str(port)], port, frames, args.repeat)
        port = free_port()
        results["serve -> file"] = run_target(
            serve + ["--listen", f"127.0.0.1:{port}", "--output", "file", "--file",
                     str(tmp / "out.jsonl")], port, frames, args.repeat)
        port = free_port()
        results["serve -> s3 (spool+gzip, moto)"] = run_target(
            serve + ["--listen", f"127.0.0.1:{port}", "--output", "s3", "--bucket", "bench",
                     "--endpoint", endpoint, "--spool", str(tmp / "spool")], port, frames,
            args.repeat)
        if shutil.which("fluent-bit"):
            port = free_port()
            results["fluent-bit forward -> file (peer)"] = run_target(
                ["fluent-bit", "-q", "-i", "forward", "-p", "listen=127.0.0.1", "-p",
                 f"port={port}", "-o", "file", "-p", f"path={tmp}", "-p", "file=fb.out",
                 "-m", "*"], port, frames, args.repeat)
        base = results["bare-forward (peer)"]
        print(f"\n{'target':40} {'records/s':>12} {'vs bare':>8}")
        for name, secs in results.items():
            print(f"{name:40} {args.records / secs:12,.0f} {base / secs:8.2f}")
        n = min(args.records, 20_000)
        for kind in ("file", "s3"):
            print(f"\nprofile of Pipeline.deliver -> {kind}, {n} records (top by own time):")
            print(profile_pipeline(kind, tmp, endpoint, n, args.chunk))
    finally:
        moto.terminate()
        moto.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
