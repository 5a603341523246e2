"""Records/s of each bundled Lua filter under LuaJIT 2.1, beside a no-op filter as the floor.

Two figures per filter:

* ``harness``: end to end through LuaFilterHarness (msgpack in, Fluent Bit's Lua conversion,
  the filter, conversion back, msgpack out), in chunks of 256 records; the no-op filter run the
  same way is the floor, and ``ratio`` = filter rate / no-op rate;
* ``lua-only``: the filter called in a loop inside LuaJIT on a fresh copy of a decoded record,
  no Python and no msgpack: the cost Fluent Bit itself would pay for the filter's own work. The
  floor is the same loop with the no-op filter (it still copies the record).

* ``fluent-bit`` (when a ``fluent-bit`` binary is on PATH, ``--fluent-bit N``): N records sent
  over forward to a real Fluent Bit running the rendered filter, timed from the first byte sent
  until its ``counter`` output has seen every record; the floor is the same run with the no-op
  filter. Includes Fluent Bit's own input and flush work (Flush 0.2 s).

Usage: python3 bench/bench_lua.py [--seconds 0.5] [--fluent-bit 20000]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import select
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import msgpack

from qtap_fluent.fluentbit.lua import filters
from qtap_fluent.fluentbit.lua.harness import FlbTime, LuaFilterHarness

NOOP = "function noop(tag, ts, record) return 0, ts, record end"

LOOP = """
local function deep_copy(t)
  if type(t) ~= "table" then return t end
  local c = {}
  for k, v in pairs(t) do c[k] = deep_copy(v) end
  return setmetatable(c, getmetatable(t))
end
function __bench(fn, record, n)
  local ts = {sec = 1700000000, nsec = 0}
  local t0 = os.clock()
  for i = 1, n do fn("qtap.bench", ts, deep_copy(record)) end
  return os.clock() - t0
end
"""


def transaction() -> dict[str, Any]:
    body = json.dumps({"user": "ann", "password": "hunter2", "items": list(range(20)),
                       "profile": {"api_key": "k", "name": "x" * 200}})
    return {
        "metadata": {"process_id": "4242", "process_exe": "/usr/bin/curl", "bytes_sent": 841,
                     "bytes_received": 1395, "connection_id": "d3t55gg7p3qr49f8485g",
                     "endpoint_id": "api.example.com"},
        "request": {
            "method": "POST", "url": "https://api.example.com/v1/login?user=ann&token=abc",
            "scheme": "https", "path": "/v1/login", "authority": "api.example.com",
            "protocol": "http2", "request_id": "d3t55gg7p3qr49f84870",
            "user_agent": "curl/8.5.0", "content_type": "application/json",
            "headers": {":authority": "api.example.com", ":method": "POST",
                        ":path": "/v1/login?user=ann&token=abc", "Authorization": "Bearer x",
                        "Accept": "application/json", "User-Agent": "curl/8.5.0"},
            "body": base64.b64encode(body.encode()).decode(),
        },
        "response": {"status": 200, "content_type": "application/json",
                     "headers": {":status": "200", "Content-Type": "application/json"},
                     "body": base64.b64encode(b'{"ok":true,"access_token":"zzz"}').decode()},
        "transaction_time": "2025-10-23T16:07:41.023379679Z", "duration_ms": 150,
        "direction": "egress-external",
    }


def submission() -> dict[str, Any]:
    data = json.dumps(transaction(), separators=(",", ":")).encode()
    return {"level": "qpoint", "ts": 1.5, "message": "object store submission",
            "type": "http_transaction", "contentType": "application/json", "bytes": len(data),
            "digest": "0" * 40, "data_base64": base64.b64encode(data).decode()}


def make(name: str | None, params: dict[str, Any]) -> LuaFilterHarness:
    if name is None:
        return LuaFilterHarness(NOOP + LOOP, "noop")
    f = filters.get(name)
    opts = dict(filters.filter_options(name))
    return LuaFilterHarness(
        filters.render_script(name, params) + LOOP, f.call,
        time_as_table=opts.get("time_as_table", "Off") == "On",
        type_int_key=opts.get("type_int_key"),
    )


def harness_rate(h: LuaFilterHarness, record: dict[str, Any], seconds: float) -> float:
    chunk = [record] * 256
    ts = FlbTime(1_700_000_000, 0)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        h.run("qtap.bench", ts, chunk)
        n += len(chunk)
    return n / (time.perf_counter() - t0)


def lua_rate(h: LuaFilterHarness, record: dict[str, Any], seconds: float) -> float:
    # decode the record once through the harness codec, then loop inside LuaJIT
    rt = h._rt  # the bench reaches into the harness on purpose: same state, same filter
    lua_record = h._codec.decode(msgpack.packb(record, use_bin_type=True))
    fn = rt.globals()[h.call.encode()]
    bench = rt.globals()[b"__bench"]
    n = 1000
    while True:
        elapsed = float(bench(fn, lua_record, n))
        if elapsed >= seconds / 4 or n > 10_000_000:
            return n / elapsed
        n *= 4


def fluent_bit_rate(binary: str, name: str | None, params: dict[str, Any],
                    record: dict[str, Any], n: int) -> float:
    """Records/s through a real Fluent Bit: forward in, the filter, stdout json_lines out."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "filter.lua"
        if name is None:
            script.write_text(NOOP, encoding="utf-8")
            options = [("script", str(script)), ("call", "noop")]
        else:
            script.write_text(filters.render_script(name, params), encoding="utf-8")
            options = filters.filter_options(name, str(script))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        conf = Path(tmp) / "fb.conf"
        opts = "\n".join(f"    {k} {v}" for k, v in options)
        conf.write_text(
            f"[SERVICE]\n    Flush 0.2\n    Log_Level error\n\n"
            f"[INPUT]\n    Name forward\n    Listen 127.0.0.1\n    Port {port}\n\n"
            f"[FILTER]\n    Name lua\n    Match *\n{opts}\n\n"
            f"[OUTPUT]\n    Name counter\n    Match *\n",
            encoding="utf-8")
        # out_counter printf()s without fflush: ask for line-buffered stdout
        prefix = [stdbuf, "-oL"] if (stdbuf := shutil.which("stdbuf")) else []
        proc = subprocess.Popen([*prefix, binary, "-c", str(conf)], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    sock = socket.create_connection(("127.0.0.1", port), timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                raise RuntimeError("fluent-bit did not start")
            ts = msgpack.ExtType(0, (1_700_000_000).to_bytes(4, "big") + bytes(4))
            batch = msgpack.packb(["qtap.bench", [[ts, record]] * 500], use_bin_type=True)
            expected = n * (3 if name == "split_payloads" else 1)
            if name == "drop":
                expected = n  # the bench's drop rules match nothing
            assert proc.stdout is not None
            t0 = time.perf_counter()
            with sock:
                for _ in range(n // 500):
                    sock.sendall(batch)
                seen, buf, deadline = 0, b"", time.monotonic() + 120
                fd = proc.stdout.fileno()
                while seen < expected:  # out_counter prints one JSON line per flushed chunk
                    ready, _, _ = select.select([fd], [], [], 5)
                    if not ready:
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"fluent-bit: {seen} of {expected} records seen")
                        continue
                    data = os.read(fd, 65536)
                    if not data:
                        raise RuntimeError("fluent-bit stopped")
                    *lines, buf = (buf + data).split(b"\n")
                    seen += sum(int(json.loads(ln)["log_records"]) for ln in lines
                                if ln.startswith(b"{"))
            return n / (time.perf_counter() - t0)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("redact", {}, transaction()),
    ("redact (docker log)", {}, {"log": json.dumps(transaction())}),
    ("enrich", {}, transaction()),
    ("split_payloads", {}, transaction()),
    ("drop", {"domains": ["example.org"], "status_ranges": [(500, 599)]}, transaction()),
    ("qtap_unwrap", {}, submission()),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.5, help="time per measurement")
    ap.add_argument("--fluent-bit", type=int, default=0, metavar="N",
                    help="also time N records through a real fluent-bit (0: skip)")
    args = ap.parse_args()
    binary = shutil.which("fluent-bit") if args.fluent_bit else None
    noop = make(None, {})
    floor_h = harness_rate(noop, transaction(), args.seconds)
    floor_l = lua_rate(noop, transaction(), args.seconds)
    floor_f = fluent_bit_rate(binary, None, {}, transaction(), args.fluent_bit) if binary else 0
    head = f"{'filter':<22}{'harness rec/s':>14}{'ratio':>7}{'lua-only rec/s':>16}{'ratio':>7}"
    if binary:
        head += f"{'fluent-bit rec/s':>18}{'ratio':>7}"
    print(head)
    row = f"{'no-op (floor)':<22}{floor_h:>14,.0f}{1:>7.2f}{floor_l:>16,.0f}{1:>7.2f}"
    print(row + (f"{floor_f:>18,.0f}{1:>7.2f}" if binary else ""))
    for label, params, record in CASES:
        name = label.split(" ")[0]
        h = make(name, params)
        hr = harness_rate(h, record, args.seconds)
        lr = lua_rate(h, record, args.seconds)
        row = f"{label:<22}{hr:>14,.0f}{hr / floor_h:>7.2f}{lr:>16,.0f}{lr / floor_l:>7.2f}"
        if binary:
            fr = fluent_bit_rate(binary, name, params, record, args.fluent_bit)
            row += f"{fr:>18,.0f}{fr / floor_f:>7.2f}"
        print(row)


if __name__ == "__main__":
    main()
