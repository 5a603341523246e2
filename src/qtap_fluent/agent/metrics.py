"""Counters as Prometheus text (exposition format 0.0.4) and the one-line exit summary."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields

from qtap_fluent.agent.tracker import Counters

#: Metric name, help text per counter field; the table is the list of what we export.
HELP: dict[str, str] = {
    "transactions_emitted": "HTTP transactions written to the output",
    "dropped_by_policy": "HTTP transactions dropped by the capture policy (level none)",
    "connections_desynchronised": "Connections whose HTTP framing was lost",
    "bytes_truncated": "Bytes the capture source did not deliver (explicit gaps)",
    "events_lost": "Events the capture source reported lost",
    "connections_refused": "Connections not tracked because the connection limit was reached",
    "connections_evicted": "Connections finished because they were idle too long",
    "connections_ignored": "Connections skipped by tap direction, loopback or process filters",
    "responses_unpaired": "Responses that matched no request",
    "body_bytes_dropped": "Body bytes not kept because all open bodies reached their memory bound",
}
PREFIX = "qtap_fluent_agent_"


def prometheus_text(counters: Counters, open_connections: int) -> str:
    """The /metrics body."""
    lines: list[str] = []
    for f in fields(counters):
        if f.name not in HELP:
            continue
        name = f"{PREFIX}{f.name}_total"
        lines += [f"# HELP {name} {HELP[f.name]}", f"# TYPE {name} counter",
                  f"{name} {getattr(counters, f.name)}"]
    for key, value in sorted(counters.extra.items()):
        name = f"{PREFIX}{key}_total"
        lines += [f"# TYPE {name} counter", f"{name} {value}"]
    gauge = f"{PREFIX}open_connections"
    lines += [f"# HELP {gauge} Connections currently tracked", f"# TYPE {gauge} gauge",
              f"{gauge} {open_connections}"]
    return "\n".join(lines) + "\n"


def summary_line(counters: Counters) -> str:
    """``transactions=12 dropped_by_policy=3 ...``: printed on exit."""
    return " ".join(f"{f.name}={getattr(counters, f.name)}" for f in fields(counters)
                    if f.name in HELP)


def parse_listen(addr: str) -> tuple[str, int]:
    """``HOST:PORT`` / ``[v6]:PORT`` / ``:PORT`` -> (host, port); ValueError when malformed."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{addr!r}: expected HOST:PORT")
    return (host.strip("[]") or "127.0.0.1"), int(port)


class MetricsServer:
    """A tiny HTTP server for ``GET /metrics`` in a daemon thread (the Prometheus endpoint)."""

    def __init__(self, addr: str, render: Callable[[], str]) -> None:
        import http.server
        import socketserver
        import threading

        host, port = parse_listen(addr)
        body_of = render

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] not in ("/metrics", "/"):
                    self.send_error(404)
                    return
                data = body_of().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            address_family = __import__("socket").AF_INET6 if ":" in host else \
                __import__("socket").AF_INET

        self.server = Server((host, port), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
