"""Wall time of ``qtap-fluent validate`` on the guide's stdout deployment (target: < 500 ms).

Three figures, each the minimum and the median of ``--runs`` runs (on a shared machine the
minimum is the better estimate of the cost itself, the median of what a CI runner sees):

* ``subprocess``: ``qtap-fluent validate DIR`` as CI runs it (interpreter start, imports,
  loading, every rule, report), beside ``python3 -c pass`` as the floor, and the same command
  on an empty folder (start-up and imports without work);
* ``in-process (cold)``: the first ``engine.run`` in a fresh interpreter, imports of rules and
  of the lazily imported libraries (jsonschema, lupa, onigurumacffi) included;
* ``in-process (warm)``: later ``engine.run`` calls in the same interpreter: the work itself.

Usage: python3 bench/bench_validate.py [--runs 5] [DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GUIDE = Path(__file__).resolve().parent.parent / "tests" / "data" / "validate" / "valid" / \
    "guide-stdout"
TARGET_MS = 500.0

COLD = """
import sys, time
t0 = time.perf_counter()
from qtap_fluent.validate import engine
engine.run([sys.argv[1]])
print((time.perf_counter() - t0) * 1000)
"""


Stat = tuple[float, float]  # (min, median) in milliseconds


def _stat(times: list[float]) -> Stat:
    return min(times), statistics.median(times)


def _wall(argv: list[str], runs: int) -> Stat:
    """Wall time of ``argv`` in milliseconds (output discarded)."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append((time.perf_counter() - t0) * 1000)
    return _stat(times)


def _cold(folder: str, runs: int) -> Stat:
    outs = []
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-c", COLD, folder], capture_output=True,
                              text=True, check=True)
        outs.append(float(proc.stdout.strip()))
    return _stat(outs)


def _warm(folder: str, runs: int) -> Stat:
    from qtap_fluent.validate import engine

    engine.run([folder])  # imports and lru caches (compose schema) out of the way
    times = []
    for _ in range(max(runs, 5)):
        t0 = time.perf_counter()
        engine.run([folder])
        times.append((time.perf_counter() - t0) * 1000)
    return _stat(times)


def _row(label: str, stat: Stat, floor: Stat | None = None, note: str = "") -> str:
    ratio = f"   x{stat[0] / floor[0]:.1f} of floor" if floor else ""
    return f"{label:36} min {stat[0]:7.1f} ms  median {stat[1]:7.1f} ms{ratio}{note}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default=str(GUIDE))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    # The console script beside this interpreter: a PATH lookup may find a version manager's
    # shell shim (pyenv adds ~100 ms) that the floor does not pay either.
    script = Path(sys.executable).parent / "qtap-fluent"
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "qtap_fluent"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "deploy"
        shutil.copytree(args.folder, work)
        empty = Path(tmp) / "empty"
        empty.mkdir()
        floor = _wall([sys.executable, "-c", "pass"], args.runs)
        startup = _wall([*cli, "validate", str(empty)], args.runs)
        full = _wall([*cli, "validate", str(work)], args.runs)
        cold = _cold(str(work), args.runs)
        warm = _warm(str(work), args.runs)
    files = len([p for p in Path(args.folder).iterdir() if p.is_file()])
    verdict = "under" if full[0] < TARGET_MS else "OVER"
    print(f"deployment: {args.folder} ({files} files), {args.runs} runs each")
    print(_row("python3 -c pass (floor)", floor))
    print(_row("qtap-fluent validate <empty dir>", startup, floor))
    print(_row("qtap-fluent validate DIR", full, floor,
               f"  ({verdict} the {TARGET_MS:.0f} ms target)"))
    print(_row("in-process engine.run, cold", cold))
    print(_row("in-process engine.run, warm", warm))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
