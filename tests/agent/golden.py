"""Golden wire captures: data files of source events -> the records they must give.

Each ``tests/data/agent/golden/*.json`` holds the connection facts, the events (``dir`` out/in
with ``data`` text or ``data_b64``, optional ``lost`` bytes after it; or ``close``), the capture
level, and the expected records as Qtap JSON maps.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from qtap_fluent.agent.events import Address, CloseEvent, DataEvent, Direction, Origin, SourceEvent
from qtap_fluent.agent.ids import XidGenerator
from qtap_fluent.agent.policy import HttpCapture, Policy
from qtap_fluent.agent.runner import Runner
from qtap_fluent.records import HttpTransaction, from_dict, go_json
from qtap_fluent.sinks.base import Result

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "agent" / "golden"
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def _addr(text: str) -> Address:
    host, _, port = text.rpartition(":")
    return Address(ip=host.strip("[]"), port=int(port))


def events(case: dict[str, Any]) -> list[SourceEvent]:
    out: list[SourceEvent] = []
    for step in case["events"]:
        ts = T0 + int(step["t"])
        if step["dir"] == "close":
            out.append(CloseEvent(conn_id=step.get("conn", 1), pid=case["pid"], ts_ns=ts))
            continue
        data = (base64.b64decode(step["data_b64"]) if "data_b64" in step
                else step["data"].encode("latin-1"))
        out.append(DataEvent(
            conn_id=step.get("conn", 1), pid=case["pid"], tid=case["pid"], exe=case["exe"],
            direction=Direction.OUTBOUND if step["dir"] == "out" else Direction.INBOUND,
            local=_addr(case["local"]), remote=_addr(case["remote"]),
            origin=Origin(case["origin"]), tls=case.get("tls", False), sni=case.get("sni"),
            ts_ns=ts, data=data, real_len=len(data) + int(step.get("lost", 0))))
    return out


class ListOutput:
    name = "list"

    def __init__(self) -> None:
        self.records: list[HttpTransaction] = []
        self.lines: list[str] = []

    def open(self) -> None:
        pass

    def write(self, record: dict[str, Any], line: str, time_ns: int) -> Result:
        typed = from_dict(record)
        if line.startswith("{"):
            # The core writes the JSON of the map it built (build.record_map): it must be
            # exactly the record's own map (keys, order, omitempty), byte for byte.
            assert line == go_json(typed.to_dict())
        assert typed.transaction_time_ns == time_ns
        self.records.append(typed)
        self.lines.append(line)
        return Result.OK

    def close(self) -> Result:
        return Result.OK


def run_case(case: dict[str, Any], policy: Policy | None = None) -> tuple[Runner, ListOutput]:
    pol = policy or Policy(stacks={"s": HttpCapture(level=case.get("level", "full"))},
                           http_stack="s")
    out = ListOutput()
    runner = Runner(pol, out)
    runner.tracker.ids = XidGenerator("golden", 1)
    runner.run(events(case))
    return runner, out


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GOLDEN / f"{name}.json").read_text())
    return data


def names() -> list[str]:
    return sorted(p.stem for p in GOLDEN.glob("*.json"))
