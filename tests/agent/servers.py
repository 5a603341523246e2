"""Local test servers on 127.0.0.1: HTTP/1.1 (stdlib) and h2c (the ``h2`` library)."""

from __future__ import annotations

import gzip
import http.server
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import h2.config
import h2.connection
import h2.events


class _H1(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, body: bytes, head: bool = False) -> None:
        if self.path.startswith("/gzip"):
            body = gzip.compress(body, mtime=0)
        self.send_response(404 if self.path.startswith("/missing") else 200)
        self.send_header("Content-Type", "application/json")
        if self.path.startswith("/gzip"):
            self.send_header("Content-Encoding", "gzip")
        if self.path.startswith("/chunked"):
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if not head:
                for part in (body[:5], body[5:]):
                    self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._reply(b'{"path":"' + self.path.encode() + b'"}')

    def do_HEAD(self) -> None:
        self._reply(b'{"path":"' + self.path.encode() + b'"}', head=True)

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length", "0"))
        self._reply(b'{"echo":' + self.rfile.read(n) + b"}")


@contextmanager
def http1_server() -> Iterator[int]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _H1)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)


def _respond(conn: h2.connection.H2Connection, sid: int, path: str, got: int) -> None:
    body = b'{"h2":"' + path.encode() + b'","got":' + str(got).encode() + b"}"
    conn.send_headers(sid, [(":status", "200"), ("content-type", "application/json"),
                            ("content-length", str(len(body)))])
    conn.send_data(sid, body, end_stream=True)


def _h2_conn(sock: socket.socket) -> None:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    paths: dict[int, str] = {}
    bodies: dict[int, bytes] = {}
    first = sock.recv(65535, socket.MSG_PEEK)
    if first.startswith(b"PRI"):
        conn.initiate_connection()
    else:  # HTTP/1.1 Upgrade: h2c (RFC 7540 §3.2), as curl --http2 does for http:// URLs
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        fields = {k.strip().lower(): v.strip() for k, _, v in
                  (line.partition(":") for line in lines[1:] if line)}
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                     b"Upgrade: h2c\r\n\r\n")
        conn.initiate_upgrade_connection(fields["http2-settings"].encode())
        _respond(conn, 1, path, 0)
    sock.sendall(conn.data_to_send())
    with sock:
        while True:
            data = sock.recv(65535)
            if not data:
                return
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    hdrs = {(k.decode() if isinstance(k, bytes) else k):
                            (v.decode() if isinstance(v, bytes) else v) for k, v in ev.headers}
                    paths[ev.stream_id] = hdrs.get(":path", "")
                    bodies[ev.stream_id] = b""
                elif isinstance(ev, h2.events.DataReceived):
                    bodies[ev.stream_id] = bodies.get(ev.stream_id, b"") + ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id in paths:
                    _respond(conn, ev.stream_id, paths[ev.stream_id], len(bodies[ev.stream_id]))
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    sock.sendall(conn.data_to_send())
                    return
            sock.sendall(conn.data_to_send())


def _h2_conn_quiet(sock: socket.socket) -> None:
    try:
        _h2_conn(sock)
    except OSError:
        pass  # the client reset the connection after its last response: nothing to serve


@contextmanager
def h2c_server() -> Iterator[int]:
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                s, _ = lsock.accept()
            except OSError:
                return
            threading.Thread(target=_h2_conn_quiet, args=(s,), daemon=True).start()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield lsock.getsockname()[1]
    finally:
        stop.set()
        lsock.close()
        t.join(5)


def h2c_client(port: int, requests: list[tuple[str, str, bytes]]) -> dict[int, bytes]:
    """Send all ``(method, path, body)`` at once on one h2c connection (multiplexed streams);
    return stream id -> response body."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock = socket.create_connection(("127.0.0.1", port))
    with sock:
        sock.sendall(conn.data_to_send())
        for method, path, body in requests:
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, [(":method", method), (":path", path), (":scheme", "http"),
                                    (":authority", f"127.0.0.1:{port}"),
                                    ("user-agent", "python-h2")], end_stream=not body)
            if body:
                conn.send_data(sid, body, end_stream=True)
        sock.sendall(conn.data_to_send())
        out: dict[int, bytes] = {}
        done: set[int] = set()
        while len(done) < len(requests):
            data = sock.recv(65535)
            if not data:
                break
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.DataReceived):
                    out[ev.stream_id] = out.get(ev.stream_id, b"") + ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    done.add(ev.stream_id)
            sock.sendall(conn.data_to_send())
        conn.close_connection()
        sock.sendall(conn.data_to_send())
    return out
