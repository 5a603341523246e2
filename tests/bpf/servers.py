"""Tiny HTTP/1.1 servers for the eBPF system tests and the overhead benchmark.

Run as a separate process (``python servers.py --tls CERT KEY``) so that the probes see a real
server process; it prints its port on the first line of stdout, then serves until killed.
GET /big/N answers N bytes; POST answers with the length of what it read; anything else
answers "hello <path>".
"""

from __future__ import annotations

import argparse
import http.server
import socket
import ssl
import sys
import time


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    # One buffered write per response and no Nagle: otherwise the status line and the body go
    # out as two segments and delayed ACKs make every keep-alive request take 40 ms.
    wbufsize = -1
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        if self.path.startswith("/big/"):
            body = b"x" * int(self.path[5:])
        else:
            body = b"hello " + self.path.encode()
        self._answer(body)

    def do_POST(self) -> None:
        if self.path.startswith("/slow"):
            time.sleep(1.0)  # let the client's socket buffer fill: it must wait and retry
        n = int(self.headers.get("Content-Length", "0"))
        got = self.rfile.read(n)
        self._answer(f"got {len(got)}".encode())

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve_h2(host: str, cert: str, key: str) -> None:
    """HTTP/2 over TLS (ALPN h2) with the h2 library: answers "hello <path>" to every stream."""
    import threading

    import h2.config
    import h2.connection
    import h2.events

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["h2"])
    lsock = socket.create_server((host, 0))
    print(lsock.getsockname()[1], flush=True)
    sys.stdout.close()

    def handle(raw: socket.socket) -> None:
        with ctx.wrap_socket(raw, server_side=True) as tls:
            conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
            conn.initiate_connection()
            tls.sendall(conn.data_to_send())
            while data := tls.recv(65536):
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        path = dict(ev.headers).get(b":path", b"/")
                        body = b"hello " + path
                        conn.send_headers(ev.stream_id, [(":status", "200"),
                                                         ("content-length", str(len(body)))])
                        conn.send_data(ev.stream_id, body, end_stream=True)
                tls.sendall(conn.data_to_send())

    while True:
        raw, _ = lsock.accept()
        threading.Thread(target=handle, args=(raw,), daemon=True).start()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--h2", action="store_true", help="HTTP/2 over TLS (needs --tls)")
    args = p.parse_args()
    if args.h2:
        serve_h2(args.host, args.tls[0], args.tls[1])
        return
    if ":" in args.host:
        http.server.ThreadingHTTPServer.address_family = socket.AF_INET6
    srv = http.server.ThreadingHTTPServer((args.host, 0), Handler)
    if args.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls[0], args.tls[1])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print(srv.server_address[1], flush=True)
    sys.stdout.close()
    srv.serve_forever()


if __name__ == "__main__":
    main()
