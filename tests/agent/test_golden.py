"""Golden wire captures -> Qtap records, compared field by field (tests/data/agent/golden)."""

from __future__ import annotations

import base64
import json

import pytest

from qtap_fluent.agent.policy import HttpCapture, Policy
from qtap_fluent.records import from_dict
from tests.agent import golden


@pytest.mark.parametrize("name", golden.names())
def test_golden_records(name: str) -> None:
    case = golden.load(name)
    fmt = case.get("format", "json")
    policy = Policy(stacks={"s": HttpCapture(level=case["level"], format=fmt)}, http_stack="s")
    runner, out = golden.run_case(case, policy)
    got = [r.to_dict() for r in out.records]
    assert len(got) == len(case["records"]), [r["request"]["url"] for r in got]
    for i, (g, want) in enumerate(zip(got, case["records"], strict=True)):
        assert list(g) == list(want), f"record {i}: key order"
        for section in want:
            assert g[section] == want[section], f"record {i}: {section}"
        # the wire form is the compact, key-ordered JSON of the same map
        line = out.lines[i]
        if fmt == "json":
            assert json.loads(line) == want
            assert line.startswith('{"metadata":{')
        else:
            assert line == case["text"][i]
    for key, value in case["counters"].items():
        assert getattr(runner.counters, key) == value, key


@pytest.mark.parametrize("name", golden.names())
def test_golden_records_survive_a_round_trip(name: str) -> None:
    case = golden.load(name)
    for want in case["records"]:
        assert from_dict(want).to_dict() == want


@pytest.mark.parametrize("name", golden.names())
@pytest.mark.parametrize("parts", [2, 3, 7])
def test_event_split_does_not_change_records(name: str, parts: int) -> None:
    """Cutting every data event into pieces (as eBPF may deliver them) gives the same records;
    bytes lost by the capture stay after the last piece."""
    case = golden.load(name)
    runner_whole, whole = golden.run_case(case)
    steps = []
    for step in case["events"]:
        if step["dir"] == "close":
            steps.append(step)
            continue
        raw = (base64.b64decode(step["data_b64"]) if "data_b64" in step
               else step["data"].encode("latin-1"))
        cuts = [len(raw) * i // parts for i in range(parts + 1)]
        for i in range(parts):
            piece = {k: v for k, v in step.items() if k not in ("data", "data_b64", "lost")}
            piece["data_b64"] = base64.b64encode(raw[cuts[i]:cuts[i + 1]]).decode()
            if i == parts - 1 and "lost" in step:
                piece["lost"] = step["lost"]
            steps.append(piece)
    runner_cut, cut = golden.run_case({**case, "events": steps})
    assert [r.to_dict() for r in cut.records] == [r.to_dict() for r in whole.records]
    assert runner_cut.counters == runner_whole.counters
