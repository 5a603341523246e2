"""Overhead of the eBPF capture source on a loopback HTTPS keep-alive loop.

One run, side by side: the same client (Python http.client, keep-alive, TLS via OpenSSL) against
the same server (Python http.server + ssl), with the probes detached and attached, alternating
rounds so machine noise hits both. Prints request time for each and the ratio (target <= 1.25x;
a raw prototype that probed both ends measured 1.5-1.85x).

While attached, this process reads and translates every event (what the agent's source does),
so the cost of draining the buffer is on the machine too. Needs root and scripts/setup-ebpf.sh.

    python3 bench/bench_bpf_overhead.py [--seconds 3] [--rounds 2]
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = -1  # one write per response (no Nagle/delayed-ACK stalls)
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        body = b"ok " + self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(cert: str, key: str) -> None:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


def client(ca: str, port: int) -> None:
    """One keep-alive connection; each stdin line "SECONDS" runs the loop and prints n, time."""
    ctx = ssl.create_default_context(cafile=ca)
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
    n = 0
    for line in sys.stdin:
        count, t0 = 0, time.monotonic()
        end = t0 + float(line)
        while time.monotonic() < end:
            conn.request("GET", f"/r/{n}")
            conn.getresponse().read()
            n += 1
            count += 1
        print(count, time.monotonic() - t0, flush=True)


def cpu_seconds(pid: int) -> float:
    """user + system CPU of a process so far (/proc/PID/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Client:
    """The client process: started once so the source can be told its pid up front."""

    def __init__(self, ca: str, port: int) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--client", ca, str(port)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def round(self, seconds: float, server_pid: int) -> tuple[float, float]:
        """(wall, CPU of client + server) per request in microseconds, over ``seconds``.

        CPU time is the steadier figure on a shared machine: uprobe traps are charged to the
        traced processes, and other load changes it far less than it changes wall time.
        """
        assert self.proc.stdin is not None and self.proc.stdout is not None
        cpu0 = cpu_seconds(self.proc.pid) + cpu_seconds(server_pid)
        self.proc.stdin.write(f"{seconds}\n")
        self.proc.stdin.flush()
        n, took = self.proc.stdout.readline().split()
        cpu = cpu_seconds(self.proc.pid) + cpu_seconds(server_pid) - cpu0
        return float(took) / int(n) * 1e6, cpu / int(n) * 1e6

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=1.5)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--client", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--all-processes", action="store_true",
                   help="probe every process (default: only the client and server, so other "
                        "traffic on a shared machine does not load the reader)")
    a = p.parse_args()
    if a.serve:
        serve(*a.serve)
        return 0
    if a.client:
        client(a.client[0], int(a.client[1]))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-bpf-") as d:
        return measure(a, Path(d))


def measure(a: argparse.Namespace, tmp: Path) -> int:
    """Certificates in ``tmp``, a server, a client; alternate detached/attached rounds."""
    import trustme

    from qtap_fluent.agent.bpf.loader import BpfOptions, BpfSource

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(tmp / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(tmp / "key.pem"))
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(tmp / "cert.pem"),
                               str(tmp / "key.pem")], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    port = int(server.stdout.readline())
    off: list[float] = []
    on: list[float] = []
    off_cpu: list[float] = []
    on_cpu: list[float] = []
    events = 0
    reader_cpu = 0.0
    requests_on = 0.0
    cl = Client(str(tmp / "ca.pem"), port)
    # One program, loaded once; rounds alternate detached/attached so load from anything else
    # on the machine falls on both alike.
    only = None if a.all_processes else frozenset({server.pid, cl.proc.pid})
    src = BpfSource(BpfOptions(ignore_loopback=False, scan_processes=False, only_pids=only))
    stop = threading.Event()
    try:
        src.start()

        def drain() -> None:
            nonlocal events, reader_cpu
            t0 = time.thread_time()
            while not stop.is_set():
                events += len(src.poll(50))
            reader_cpu = time.thread_time() - t0

        reader = threading.Thread(target=drain)
        reader.start()
        try:
            cl.round(0.5, server.pid)  # warm up
            for _ in range(a.rounds):
                src.pause()
                wall, cpu = cl.round(a.seconds, server.pid)
                off.append(wall)
                off_cpu.append(cpu)
                src.resume()
                wall, cpu = cl.round(a.seconds, server.pid)
                on.append(wall)
                on_cpu.append(cpu)
                requests_on += a.seconds / (wall / 1e6)
        finally:
            stop.set()
            reader.join()
        lost = src.counters.lost_buffer
    finally:
        src.close()
        cl.close()
        server.kill()
        server.wait()
    base, probed = statistics.median(off), statistics.median(on)
    cbase, cprobed = statistics.median(off_cpu), statistics.median(on_cpu)

    def rounds(xs: list[float]) -> str:
        return ", ".join(f"{x:.0f}" for x in xs)

    print(f"request time, probes detached: {base:7.1f} us  (rounds: {rounds(off)})")
    print(f"request time, probes attached: {probed:7.1f} us  (rounds: {rounds(on)})")
    print(f"client+server CPU per request, detached: {cbase:7.1f} us  (rounds: {rounds(off_cpu)})")
    print(f"client+server CPU per request, attached: {cprobed:7.1f} us  (rounds: {rounds(on_cpu)})")
    print(f"ratio attached/detached: request time {probed / base:.2f}x, CPU {cprobed / cbase:.2f}x "
          f"(target <= 1.25x); events read: {events}, lost: {lost}")
    print(f"reader CPU (decode + translate, this process): "
          f"{reader_cpu / max(requests_on, 1) * 1e6:.1f} us per request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
