"""Regenerate tests/data/agent/golden/*.json from the wire bytes below.

The expected records in those files were produced by this script and then reviewed field by
field; rerun it only when the wire input changes, and review the diff (``git diff``) before
committing: the files are the specification the tests hold the code to.

    python3 -m tests.agent.make_golden
"""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

from qtap_fluent.agent.policy import HttpCapture, Policy
from tests.agent import golden
from tests.agent.h2wire import PREFACE, Side, request


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


MS = 1_000_000
GZ = gzip.compress(b'{"items":[1,2,3]}', mtime=0)
cases: dict[str, dict[str, Any]] = {}
cases["h1-keepalive-chunked-gzip"] = {
    'description': "curl-like client: GET with a chunked gzip response, then a POST with a JSON body on the same connection",
    'origin': "connect", 'local': "10.1.2.3:45000", 'remote': "93.184.216.34:80", 'pid': 4242, 'exe': "/usr/bin/curl", 'level': "full",
    'events': [
        {'t': 0, 'dir': "out", 'data': "GET /items?page=2 HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\nX-Dup: first\r\nX-Dup: second\r\n\r\n"},
        {'t': 12*MS, 'dir': "in", 'data_b64': b64(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n" + f"{len(GZ):x}\r\n".encode() + GZ + b"\r\n0\r\n\r\n")},
        {'t': 20*MS, 'dir': "out", 'data': 'POST /items HTTP/1.1\r\nHost: api.example.com\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n{"name":"<a>"}'},
        {'t': 35*MS, 'dir': "in", 'data': "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\n{\"id\":7}"},
        {'t': 40*MS, 'dir': "close"}]}
cases["h1-head-1xx-204-304"] = {
    'description': "HEAD with Content-Length and no body, 100-continue before 204, conditional GET answered 304",
    'origin': "connect", 'local': "192.168.1.10:50000", 'remote': "192.168.1.20:8080", 'pid': 77, 'exe': "/usr/bin/python3.11", 'level': "headers",
    'events': [
        {'t': 0, 'dir': "out", 'data': "HEAD /file HTTP/1.1\r\nHost: files.internal:8080\r\n\r\n"},
        {'t': 1*MS, 'dir': "in", 'data': "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\nContent-Type: application/octet-stream\r\n\r\n"},
        {'t': 2*MS, 'dir': "out", 'data': "PUT /file HTTP/1.1\r\nHost: files.internal:8080\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"},
        {'t': 3*MS, 'dir': "in", 'data': "HTTP/1.1 100 Continue\r\n\r\n"},
        {'t': 4*MS, 'dir': "out", 'data': "abc"},
        {'t': 6*MS, 'dir': "in", 'data': "HTTP/1.1 204 No Content\r\n\r\n"},
        {'t': 7*MS, 'dir': "out", 'data': "GET /file HTTP/1.1\r\nHost: files.internal:8080\r\nIf-None-Match: \"v1\"\r\n\r\n"},
        {'t': 9*MS, 'dir': "in", 'data': "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n"},
        {'t': 10*MS, 'dir': "close"}]}
cases["h1-http10-close-delimited"] = {
    'description': "HTTP/1.0 response without Content-Length: the body runs to the close",
    'origin': "connect", 'local': "10.0.0.2:40001", 'remote': "8.8.4.4:80", 'pid': 9, 'exe': "/usr/bin/wget", 'level': "full",
    'events': [
        {'t': 0, 'dir': "out", 'data': "GET /legacy HTTP/1.0\r\nHost: old.example.org\r\n\r\n"},
        {'t': 5*MS, 'dir': "in", 'data': "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\npart one, "},
        {'t': 6*MS, 'dir': "in", 'data': "part two"},
        {'t': 8*MS, 'dir': "close"}]}
cases["h1-no-response-499"] = {
    'description': "the client closes before any response: Qtap's 499",
    'origin': "connect", 'local': "10.0.0.2:40002", 'remote': "1.1.1.1:80", 'pid': 10, 'exe': "/usr/bin/curl", 'level': "summary",
    'events': [
        {'t': 0, 'dir': "out", 'data': "GET /slow HTTP/1.1\r\nHost: slow.example.net\r\nUser-Agent: curl/8.5.0\r\n\r\n"},
        {'t': 3000*MS, 'dir': "close"}]}
cases["h1-connect-tunnel"] = {
    'description': "CONNECT through a proxy: the 200 ends HTTP parsing, tunnel bytes are not parsed",
    'origin': "connect", 'local': "10.0.0.2:40003", 'remote': "10.0.0.1:3128", 'pid': 11, 'exe': "/usr/bin/curl", 'level': "headers",
    'events': [
        {'t': 0, 'dir': "out", 'data': "CONNECT secure.example.com:443 HTTP/1.1\r\nHost: secure.example.com:443\r\n\r\n"},
        {'t': 2*MS, 'dir': "in", 'data': "HTTP/1.1 200 Connection established\r\n\r\n"},
        {'t': 3*MS, 'dir': "out", 'data_b64': b64(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(20))},
        {'t': 9*MS, 'dir': "close"}]}
cases["h1-ingress-server"] = {
    'description': "a server process (accept): requests are inbound, direction ingress, body truncated by the capture",
    'origin': "accept", 'local': "172.17.0.2:8000", 'remote': "172.17.0.1:51000", 'pid': 300, 'exe': "/usr/local/bin/gunicorn", 'level': "full",
    'events': [
        {'t': 0, 'dir': "in", 'data': "POST /upload HTTP/1.1\r\nHost: app.local:8000\r\nContent-Length: 20\r\nContent-Type: text/plain\r\n\r\n0123456789", 'lost': 6},
        {'t': 1*MS, 'dir': "in", 'data': "GHIJ"},
        {'t': 4*MS, 'dir': "out", 'data': "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"},
        {'t': 5*MS, 'dir': "close"}]}
cases["h1-gap-in-headers-desync"] = {
    'description': "bytes lost inside a response header block: the connection is desynchronised, the open request ends as 499",
    'origin': "connect", 'local': "10.0.0.2:40004", 'remote': "203.0.113.9:80", 'pid': 12, 'exe': "/usr/bin/curl", 'level': "summary",
    'events': [
        {'t': 0, 'dir': "out", 'data': "GET /a HTTP/1.1\r\nHost: gap.example.com\r\n\r\n"},
        {'t': 1*MS, 'dir': "in", 'data': "HTTP/1.1 200 OK\r\nContent-Le", 'lost': 40},
        {'t': 2*MS, 'dir': "out", 'data': "GET /b HTTP/1.1\r\nHost: gap.example.com\r\n\r\n"},
        {'t': 3*MS, 'dir': "close"}]}

c, s = Side(), Side()
client1 = (PREFACE + c.settings(HEADER_TABLE_SIZE=4096, ENABLE_PUSH=0)
           + c.headers(1, request(1, "/v1/users?limit=5", authority="api.example.com", extra=[("user-agent", "grpc-go/1.60"), ("accept", "application/json")]), end_stream=True)
           + c.headers(3, request(3, "/v1/upload", "POST", authority="api.example.com", extra=[("content-type", "application/json"), ("x-long", "z" * 200)]), split=30, pad=4)
           + c.data(3, b'{"file":', pad=3) + c.data(3, b'"a.txt"}', end_stream=True)
           + c.headers(5, request(5, "/v1/slow", authority="api.example.com"), end_stream=True))
server1 = (s.settings() + s.headers(3, [(":status", "201"), ("content-type", "application/json")])
           + s.headers(1, [(":status", "200"), ("content-type", "application/json"), ("content-encoding", "gzip")])
           + s.data(3, b'{"ok":true}', end_stream=True)
           + s.data(1, gzip.compress(b'[{"id":1},{"id":2}]', mtime=0), end_stream=True, pad=10)
           + s.rst(5, 8))
client2 = (c.headers(7, request(7, "/helloworld.Greeter/SayHello", "POST", authority="grpc.example.com:50051", extra=[("content-type", "application/grpc"), ("te", "trailers")]))
           + c.data(7, b"\x00\x00\x00\x00\x07\n\x05world", end_stream=True))
server2 = (s.headers(7, [(":status", "200"), ("content-type", "application/grpc")])
           + s.data(7, b"\x00\x00\x00\x00\r\n\x0bHello world")
           + s.headers(7, [("grpc-status", "0"), ("grpc-message", "")], end_stream=True))
cases["h2-multiplexed"] = {
    'description': "h2c prior knowledge: interleaved streams, CONTINUATION, padding, gzip, RST_STREAM (499) and a gRPC call with trailers",
    'origin': "connect", 'local': "10.0.0.2:40005", 'remote': "10.0.0.80:8080", 'pid': 13, 'exe': "/usr/bin/envoy", 'level': "full",
    'events': [{'t': 0, 'dir': "out", 'data_b64': b64(client1)}, {'t': 15*MS, 'dir': "in", 'data_b64': b64(server1)},
            {'t': 20*MS, 'dir': "out", 'data_b64': b64(client2)}, {'t': 26*MS, 'dir': "in", 'data_b64': b64(server2)},
            {'t': 30*MS, 'dir': "close"}]}
c, s = Side(), Side()
cases["h2-mid-connection"] = {
    'description': "HTTP/2 frames without the preface (capture started mid-connection): desynchronised, no records",
    'origin': "connect", 'local': "10.0.0.2:40006", 'remote': "10.0.0.80:8080", 'pid': 14, 'exe': "/usr/bin/envoy", 'level': "full",
    'events': [{'t': 0, 'dir': "out", 'data_b64': b64(c.headers(9, request(9, "/x"), end_stream=True))},
            {'t': 1*MS, 'dir': "in", 'data_b64': b64(s.headers(9, [(":status", "200")], end_stream=True))},
            {'t': 2*MS, 'dir': "close"}]}
cases["tls-sni-text"] = {
    'description': "TLS plaintext from a uprobe (tls true): scheme https, SNI names the endpoint when Host is absent; text format",
    'origin': "connect", 'local': "10.0.0.2:40007", 'remote': "140.82.112.3:443", 'pid': 15, 'exe': "/usr/bin/git", 'tls': True, 'sni': "github.com", 'level': "headers", 'format': "text",
    'events': [{'t': 0, 'dir': "out", 'data': "GET /info/refs?service=git-upload-pack HTTP/1.0\r\nUser-Agent: git/2.43\r\n\r\n"},
            {'t': 50*MS, 'dir': "in", 'data': "HTTP/1.1 200 OK\r\nContent-Type: application/x-git-upload-pack-advertisement\r\nContent-Length: 4\r\n\r\n0000"},
            {'t': 60*MS, 'dir': "close"}]}

# h2c upgrade (RFC 7540 §3.2), as curl --http2 does for http:// URLs
c, s = Side(), Side()
up_req = (b"GET /upgraded HTTP/1.1\r\nHost: h2c.example.com\r\nUser-Agent: curl/8.5.0\r\n"
          b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n")
up_res = (b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
          + s.settings() + s.headers(1, [(":status", "200"), ("content-type", "text/plain")])
          + s.data(1, b"via h2c", end_stream=True))
client2 = PREFACE + c.settings() + c.headers(3, request(3, "/second", authority="h2c.example.com"), end_stream=True)
server2 = s.headers(3, [(":status", "204")], end_stream=True)
cases["h2c-upgrade"] = {
    'description': "HTTP/1.1 Upgrade: h2c answered 101: the request's response arrives as HTTP/2 stream 1, later streams follow",
    'origin': "connect", 'local': "10.0.0.2:40008", 'remote': "10.0.0.81:80", 'pid': 16, 'exe': "/usr/bin/curl", 'level': "full",
    'events': [{'t': 0, 'dir': "out", 'data': up_req.decode()}, {'t': 4*MS, 'dir': "in", 'data_b64': b64(up_res)},
            {'t': 5*MS, 'dir': "out", 'data_b64': b64(client2)}, {'t': 7*MS, 'dir': "in", 'data_b64': b64(server2)},
            {'t': 9*MS, 'dir': "close"}]}


def main() -> None:
    for name, case in cases.items():
        fmt = case.get("format", "json")
        pol = Policy(stacks={"s": HttpCapture(level=case["level"], format=fmt)}, http_stack="s")
        runner, out = golden.run_case(case, pol)
        case["records"] = [r.to_dict() for r in out.records]
        if fmt == "text":
            case["text"] = out.lines
        case["counters"] = {k: getattr(runner.counters, k) for k in ("transactions_emitted", "connections_desynchronised", "bytes_truncated")}
        (golden.GOLDEN / f"{name}.json").write_text(json.dumps(case, indent=1, ensure_ascii=False) + "\n")
        print(name, len(case["records"]), case["counters"])


if __name__ == "__main__":
    main()
