"""One pass of the capture core for instruction counting (the machine's wall clock is too noisy
to judge a change by).

    PY=$(python3 -c 'import sys; print(sys.executable)')   # the interpreter, not a shim
    PYTHONHASHSEED=0 valgrind --tool=callgrind $PY bench/callgrind_capture.py MODE N

MODE: ``events`` (only builds the input events: subtract its count), ``bare`` (httptools alone on
the same bytes), ``full``, ``redact`` (full with the default redaction), ``redact-auth`` (the
same with an Authorization header to mask; its events run is ``auth-events``), ``summary``,
``h2``, ``h2events``. Instructions per transaction = (Ir of MODE - Ir of the matching events run) / N.
PYTHONHASHSEED=0 makes two runs hash alike.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_capture as b
import httptools

from qtap_fluent.agent.policy import HttpCapture, Policy
from qtap_fluent.agent.runner import Runner
from qtap_fluent.redact import Redactor

MODES = ("events", "bare", "full", "redact", "redact-auth", "auth-events", "summary", "h2",
         "h2events")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in MODES or not argv[1].isdigit():
        print(f"usage: callgrind_capture.py {{{'|'.join(MODES)}}} N", file=sys.stderr)
        return 2
    mode, n = argv[0], int(argv[1])
    if mode.startswith("h2"):
        events = b.http2_events(n)
    else:
        events = b.http1_events(n, req=b.REQ_SECRET if "auth" in mode else b.REQ)
    if mode.endswith("events"):
        return 0
    if mode == "bare":
        cb_req, cb_res = b._Count(), b._Count()
        conns = [(httptools.HttpRequestParser(cb_req), httptools.HttpResponseParser(cb_res))
                 for _ in range(100)]
        for i in range(n):
            rq, rs = conns[i % 100]
            rq.feed_data(b.REQ)
            rs.feed_data(b.RES)
        return 0
    level = "summary" if mode == "summary" else "full"
    policy = Policy(stacks={"s": HttpCapture(level=level)}, http_stack="s",
                    redactor=Redactor() if mode.startswith("redact") else None)
    out = b.NullOutput()
    runner = Runner(policy, out)
    runner.feed(events)
    print(f"{mode}: {out.n} transactions", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
