"""Transaction records shaped like Qtap's (qtap.md §3.1) and helpers to run the bundled filters."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

from qtap_fluent.fluentbit.lua import filters
from qtap_fluent.fluentbit.lua.harness import LuaFilterHarness

TS = (1_700_000_000, 250_000_000)  # 2023-11-14T22:13:20.25Z


def b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def transaction(**over: Any) -> dict[str, Any]:
    """A full-capture transaction with secrets in every place redaction must reach."""
    txn: dict[str, Any] = {
        "metadata": {
            "process_id": "4242",
            "process_exe": "/usr/bin/curl",
            "bytes_sent": 41,
            "bytes_received": 395,
            "connection_id": "d3t55gg7p3qr49f8485g",
            "endpoint_id": "api.example.com",
        },
        "request": {
            "method": "POST",
            "url": "https://api.example.com/v1/login?user=ann&access_token=abc123&lang=en",
            "scheme": "https",
            "path": "/v1/login",
            "authority": "api.example.com",
            "protocol": "http2",
            "request_id": "d3t55gg7p3qr49f84870",
            "user_agent": "curl/8.5.0",
            "content_type": "application/json",
            "headers": {
                ":authority": "api.example.com",
                ":method": "POST",
                ":path": "/v1/login?user=ann&access_token=abc123&lang=en",
                "Authorization": "Bearer eyJhbGciOi",
                "Cookie": "session=s3cr3t",
                "X-Api-Key": "k-123",
                "Accept": "application/json",
            },
            "body": b64('{"user": "ann", "password": "hunter2", "profile": {"api_key": "k", '
                        '"age": 42}, "items": [{"token": "t1"}, 3]}'),
        },
        "response": {
            "status": 200,
            "content_type": "application/json",
            "headers": {":status": "200", "Set-Cookie": "id=1; HttpOnly", "Content-Type":
                        "application/json"},
            "body": b64('{"access_token":"zzz","expires_in":3600,"usage":{"total_tokens":12}}'),
        },
        "transaction_time": "2025-10-23T16:07:41.023379679Z",
        "duration_ms": 150,
        "direction": "egress-external",
    }
    for key, value in over.items():
        txn[key] = value
    return txn


def docker_record(txn: dict[str, Any]) -> dict[str, Any]:
    """What Docker's fluentd log driver sends for Qtap's stdout line (qtap.md §3.5)."""
    return {
        "container_id": "0123456789ab",
        "container_name": "/qtap",
        "source": "stdout",
        "log": json.dumps(txn, separators=(",", ":")),
    }


def submission(txn: dict[str, Any] | str) -> dict[str, Any]:
    """Qtap's stdout object-store line (qtap.md §3.4)."""
    data = txn if isinstance(txn, str) else json.dumps(txn, separators=(",", ":"))
    return {
        "level": "qpoint",
        "ts": 1761235661.0234,
        "message": "object store submission",
        "type": "http_transaction",
        "contentType": "application/json",
        "bytes": len(data),
        "digest": "0" * 40,
        "data_base64": b64(data),
    }


def harness(name: str, **params: Any) -> LuaFilterHarness:
    """The rendered bundled filter under the harness, with the options ``gen`` would emit."""
    f = filters.get(name)
    opts = dict(filters.filter_options(name))
    return LuaFilterHarness(
        filters.render_script(name, params),
        f.call,
        time_as_table=opts.get("time_as_table", "Off").lower() == "on",
        type_int_key=opts.get("type_int_key"),
        type_array_key=opts.get("type_array_key"),
    )


def run_one(name: str, record: dict[str, Any], **params: Any) -> list[dict[str, Any]]:
    """Records that leave filter ``name`` for one input record (a fresh deep copy)."""
    return [rec for _, rec in harness(name, **params).run("docker.qtap", TS, [copy.deepcopy(record)])]
