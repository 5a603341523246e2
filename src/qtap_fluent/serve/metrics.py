"""Prometheus text exposition (format 0.0.4) of ``serve``'s counters, and a tiny HTTP endpoint.

Like Fluent Bit's built-in HTTP server (``/api/v1/metrics/prometheus``) it is plain text over
HTTP/1.1 with ``Connection: close``; ``GET /metrics`` (or ``/``) answers, anything else is 404.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

PREFIX = "qtap_fluent_serve"
#: Request heads larger than this are refused (bounded buffer; nobody needs more for GET).
MAX_REQUEST_HEAD = 8192


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(snapshot: Mapping[str, Any], server: Mapping[str, int] | None = None) -> str:
    """The exposition text for ``Pipeline.snapshot()`` plus forward-server counters."""
    lines: list[str] = []

    def metric(name: str, kind: str, help_: str,
               samples: list[tuple[dict[str, str], float]]) -> None:
        full = f"{PREFIX}_{name}"
        lines.append(f"# HELP {full} {help_}")
        lines.append(f"# TYPE {full} {kind}")
        for labels, value in samples:
            text = ",".join(f'{k}="{_esc(v)}"' for k, v in labels.items())
            lines.append(f"{full}{{{text}}} {value:g}" if text else f"{full} {value:g}")

    metric("records_in_total", "counter", "Records received from forward peers.",
           [({}, snapshot["records_in"])])
    metric("records_unrouted_total", "counter", "Records no output matched.",
           [({}, snapshot["records_unrouted"])])
    metric("chunks_refused_total", "counter", "Chunks not acked (an output did not accept).",
           [({}, snapshot["chunks_refused"])])
    plugins = [(n, "filter", c) for n, c in snapshot["filters"]] + \
              [(n, "output", c) for n, c, _ in snapshot["outputs"]]
    for field, help_ in (("records_in", "Records handed to the plugin."),
                         ("records_out", "Records the plugin passed on or stored."),
                         ("dropped", "Records the plugin dropped."),
                         ("retried", "Retries (output RETRY answers)."),
                         ("errors", "Exceptions and ERROR answers of the plugin.")):
        metric(f"plugin_{field}_total", "counter", help_,
               [({"plugin": n, "kind": k}, getattr(c, field)) for n, k, c in plugins])
    pending = [({"plugin": n}, float(p)) for n, _, p in snapshot["outputs"] if p is not None]
    if pending:
        metric("output_pending_objects", "gauge", "Objects spooled, not yet uploaded.", pending)
    if "queue_depth" in snapshot:
        metric("queue_depth", "gauge", "Chunks waiting for the delivery thread.",
               [({}, snapshot["queue_depth"])])
    for key, value in sorted((server or {}).items()):
        kind = "gauge" if key.startswith("open_") else "counter"
        name = f"forward_{key}" + ("" if kind == "gauge" else "_total")
        metric(name, kind, f"Forward server: {key.replace('_', ' ')}.", [({}, value)])
    return "\n".join(lines) + "\n"


async def start_metrics_server(host: str, port: int,
                               text: Callable[[], str]) -> asyncio.Server:
    """Serve ``text()`` at ``/metrics`` on ``host:port``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                ConnectionError):
            writer.close()
            return
        parts = head.split(b"\r\n", 1)[0].split()
        path = parts[1].split(b"?")[0] if len(parts) >= 2 else b""
        if len(parts) >= 2 and parts[0] == b"GET" and path in (b"/metrics", b"/"):
            body = text().encode()
            status = b"200 OK"
            ctype = b"text/plain; version=0.0.4; charset=utf-8"
        else:
            body, status, ctype = b"not found\n", b"404 Not Found", b"text/plain"
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: " + ctype +
                     b"\r\nContent-Length: " + str(len(body)).encode() +
                     b"\r\nConnection: close\r\n\r\n" + body)
        try:
            await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    return await asyncio.start_server(handle, host, port, limit=MAX_REQUEST_HEAD)
