"""The same filter cases through a real Fluent Bit: proof that the harness matches it.

forward input on 127.0.0.1 (one Forward-mode message = one chunk) -> the rendered Lua filter ->
stdout json_lines; compared record by record with the harness. Skipped without ``fluent-bit``.
"""

from __future__ import annotations

import copy
import json
import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest

from qtap_fluent.fluentbit.lua import filters
from qtap_fluent.fluentbit.lua.harness import FlbTime, LuaFilterHarness

from .samples import TS, b64, docker_record, harness, submission, transaction

FLUENT_BIT = shutil.which("fluent-bit") or (
    "/opt/fluent-bit/bin/fluent-bit" if Path("/opt/fluent-bit/bin/fluent-bit").exists() else None
)
pytestmark = [
    pytest.mark.fluentbit,
    pytest.mark.skipif(FLUENT_BIT is None, reason="needs a fluent-bit binary on PATH"),
]

DATE_KEY = "qtap_test_ts"

CASES: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = [
    ("redact", {}, [transaction(), docker_record(transaction()), {"log": "plain"}, {}]),
    ("redact", {"headers": ["X-Custom"]}, [transaction(request={
        "method": "GET", "url": "http://h/?key=1", "headers": {"X-Custom": "c"}})]),
    ("enrich", {}, [transaction(), transaction(duration_ms=12000, response={"status": 404}),
                    {"request": {}}]),
    ("split_payloads", {}, [transaction(), {"request": {"method": "GET", "url": "/"}}]),
    ("drop", {"domains": ["example.com"], "status_ranges": [(500, 599)]},
     [transaction(), transaction(response={"status": 503}),
      {"request": {"url": "http://other.org/"}, "response": {"status": 200}}]),
    ("qtap_unwrap", {"drop_other": True},
     [submission(transaction()), {"log": json.dumps(submission(transaction()))},
      {"level": "info", "message": "hello"}]),
    ("redact", {}, [transaction(request={"method": "GET", "url": "/", "body": b64("[1,2")})]),
]



def _odd_cases() -> list[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    from .test_lua_filters import ODD_RECORDS

    cases = []
    for name in sorted(filters.LUA_FILTERS):
        params: dict[str, Any] = {"domains": ["example.com"]} if name == "drop" else {}
        records = ODD_RECORDS
        if name == "split_payloads":  # decoded binary bodies: JSON output escapes differ
            records = [r for r in ODD_RECORDS if "H0" not in str(r) and "AAEC" not in str(r)]
        cases.append((name, params, records))
    return cases


CASES += _odd_cases()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _event_time(t: FlbTime) -> msgpack.ExtType:
    return msgpack.ExtType(0, struct.pack(">II", t.sec, t.nsec))


def run_fluent_bit(tmp: Path, name: str, params: dict[str, Any],
                   records: list[dict[str, Any]], expect: int = 0
                   ) -> list[tuple[float, dict[str, Any]]]:
    """Records out of Fluent Bit for one chunk through bundled filter ``name``."""
    script = tmp / filters.script_filename(name)
    script.write_text(filters.render_script(name, params), encoding="utf-8")
    return run_script(tmp, filters.filter_options(name, str(script)), records, expect)


def run_script(tmp: Path, options_list: list[tuple[str, str]] | list[list[tuple[str, str]]],
               records: list[dict[str, Any]], expect: int = 0
               ) -> list[tuple[float, dict[str, Any]]]:
    """Records out of Fluent Bit for one chunk through lua filter(s) with ``options_list``.

    Waits until ``expect`` records came out (or 30 s), then stops Fluent Bit, which flushes
    whatever else it holds on SIGTERM: extra records still show up in the result.
    """
    port = _free_port()
    chain = options_list if options_list and isinstance(options_list[0], list) else [options_list]
    sections = "\n\n".join(
        "[FILTER]\n    Name lua\n    Match *\n" + "\n".join(f"    {k} {v}" for k, v in opts)
        for opts in chain
    )
    conf = tmp / "fluent-bit.conf"
    conf.write_text(
        f"""[SERVICE]
    Flush 0.2
    Grace 1
    Log_Level warn

[INPUT]
    Name forward
    Listen 127.0.0.1
    Port {port}

{sections}

[OUTPUT]
    Name stdout
    Match *
    Format json_lines
    json_date_key {DATE_KEY}
    json_date_format double
""",
        encoding="utf-8",
    )
    assert FLUENT_BIT is not None
    proc = subprocess.Popen([FLUENT_BIT, "-c", str(conf)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    stdout = proc.stdout
    assert stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(stdout.readline, "")),
                              daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError("fluent-bit did not start listening") from None
                time.sleep(0.1)
        entries = [[_event_time(FlbTime(*TS)), r] for r in records]
        with sock:  # Forward mode: one message, one chunk (fluentbit.md §1.2)
            sock.sendall(msgpack.packb(["qtap.test", entries], use_bin_type=True))
        deadline = time.monotonic() + 30
        while sum(ln.startswith("{") for ln in list(lines)) < expect:
            if time.monotonic() > deadline or proc.poll() is not None:
                break
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        reader.join(timeout=30)
    events = []
    for line in lines:
        if line.startswith("{"):
            rec = json.loads(line)
            events.append((float(rec.pop(DATE_KEY)), rec))
    return events


@pytest.mark.parametrize("index", range(len(CASES)))
def test_fluent_bit_gives_the_harness_records(index: int, tmp_path: Path) -> None:
    name, params, records = CASES[index]
    expected = harness(name, **params).run("qtap.test", TS, copy.deepcopy(records))
    got = run_fluent_bit(tmp_path, name, params, copy.deepcopy(records), len(expected))
    assert [r for _, r in got] == [json.loads(json.dumps(r)) for _, r in expected]
    for (t_got, _), (t_exp, _) in zip(got, expected):
        assert t_got == pytest.approx(t_exp.as_float(), abs=1e-6)


# -- the harness conventions themselves, through Fluent Bit -------------------------------------
CONVENTIONS: list[tuple[str, dict[str, str], list[dict[str, Any]]]] = [
    (  # return codes -1 / 0 / 1 / 2 / unexpected
        (
            "if r.i == 1 then return -1, ts, r end\n"
            "if r.i == 2 then r.x = 1; return 0, ts, r end\n"
            "if r.i == 3 then r.x = 3; return 1, 1700000100.5, r end\n"
            "if r.i == 4 then r.x = 4; return 7, ts, r end\n"
            "r.x = 5; return 2, 99, r"
        ),
        {}, [{"i": i} for i in range(1, 6)]),
    ("return 2, ts, {{n = 1}, {n = 2}}", {}, [{"a": 1}]),  # split
    ("if r.i == 2 then return 2, ts, {{n = 1}, 'x'} end r.seen = 1; return 2, ts, r",
     {}, [{"i": 1}, {"i": 2}, {"i": 3}]),  # whole chunk untouched
    ("if r.i == 2 then error('boom') end r.seen = 1; return 2, ts, r",
     {}, [{"i": 1}, {"i": 2}]),  # protected-mode error
    (("r.a = 1.0; r.b = 1.5; r.holes = {1, nil, 3}; r.mixed = {1, 2, x = 1}; "
      "r.sparse = {[2] = 'b'}; r.fresh = {}; r.status = 200.9; r.stat = 1.5; r.statuses = 2.5; "
      "r.tags = {}; return 2, ts, r"),
     {"type_int_key": "status", "type_array_key": "tags"}, [{"arr": [], "map": {}, "f": 2.0}]),
    ("r.s = ts.sec; r.n = ts.nsec; ts.sec = ts.sec + 10; return 1, ts, r",
     {"time_as_table": "On"}, [{}]),
    ("if r.list then return 2, ts, r.list end return 2, ts, {}", {},
     [{"list": []}, {"other": 1}]),
    (("if r.i == 1 then return '2', ts, {s = 1} end\n"  # codes read with lua_tointeger
     "if r.i == 2 then return 1.9, 5.0, {f = 1} end\n"
     "if r.i == 3 then r.z = 1 end"),  # no return values: code 0
     {}, [{"i": 1}, {"i": 2}, {"i": 3}]),
    ("r.x = 1; return 1, 5, r", {"time_as_table": "On"}, [{"a": 1}]),  # non-table time
    ("if r.i == 1 then return 0, nil, r end; r.x = 1; return 2, 5, r", {"time_as_table": "On"},
     [{"i": 1}, {"i": 2}]),
    # (integer map keys are left out: Fluent Bit's JSON output writes them unquoted)
    ("r.fk = {[1.5] = 'x'}; r.b = {true, false}; return 2, ts, {r, {}}", {}, [{"a": 1}]),
    ("r.s = 'é\\0'; r.n = -1e300; r.t = true; return 2, ts, r", {}, [{"u": "ü"}]),
    ("r.gone = nil; r.seen = (r.n == nil); return 2, ts, r", {},
     [{"gone": 1, "n": None, "big": 2**64 - 1, "neg": -2**63}]),
]


@pytest.mark.parametrize("index", range(len(CONVENTIONS)))
def test_fluent_bit_conventions_match_the_harness(index: int, tmp_path: Path) -> None:
    body, options, records = CONVENTIONS[index]
    script_text = f"function cb(tag, ts, r)\n{body}\nend\n"
    script = tmp_path / "conv.lua"
    script.write_text(script_text, encoding="utf-8")
    h = LuaFilterHarness(
        script_text, "cb", time_as_table=options.get("time_as_table") == "On",
        type_int_key=options.get("type_int_key"), type_array_key=options.get("type_array_key"))
    expected = h.run("qtap.test", TS, copy.deepcopy(records))
    got = run_script(tmp_path, [("script", str(script)), ("call", "cb"), *options.items()],
                     copy.deepcopy(records), len(expected))
    assert [r for _, r in got] == [json.loads(json.dumps(r)) for _, r in expected]
    for (t_got, _), (t_exp, _) in zip(got, expected):
        assert t_got == pytest.approx(t_exp.as_float(), abs=1e-6)


def test_fluent_bit_runs_the_recommended_chain_like_the_harness(tmp_path: Path) -> None:
    records = [submission(transaction()), {"log": json.dumps(submission(transaction()))},
               {"level": "info", "message": "x"}]
    chain = []
    expected = copy.deepcopy(records)
    for name in filters.RECOMMENDED_ORDER:
        params: dict[str, Any] = {"drop_other": True} if name == "qtap_unwrap" else {}
        script = tmp_path / filters.script_filename(name)
        script.write_text(filters.render_script(name, params), encoding="utf-8")
        chain.append(filters.filter_options(name, str(script)))
        expected = [r for _, r in harness(name, **params).run("qtap.test", TS, expected)]
    got = run_script(tmp_path, chain, copy.deepcopy(records), len(expected))
    assert len(expected) == 6  # each transaction: summary + 2 bodies; the info line dropped
    assert [r for _, r in got] == [json.loads(json.dumps(r)) for r in expected]
