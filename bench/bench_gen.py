"""Wall time of ``qtap-fluent gen`` on the bundled default, beside the interpreter's floor.

Runs, interleaved, N times each: ``python -c pass`` (the floor no Python CLI can beat),
``python -m qtap_fluent gen --out TMP`` (the whole command: start-up, imports, load and check the
Qtap YAML, render, write) and the in-process render alone. Prints medians and the ratio to the
floor. Target: the whole command under 300 ms.

    python bench/bench_gen.py [N]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    floor: list[float] = []
    gen: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "deploy")
        for _ in range(n):
            floor.append(wall([sys.executable, "-c", "pass"]))
            gen.append(wall([sys.executable, "-m", "qtap_fluent", "gen", "--out", out]))
    import yaml

    from qtap_fluent.gen import files
    from qtap_fluent.gen.reference import default_qtap_text
    from qtap_fluent.gen.spec import GenSpec

    data = yaml.safe_load(default_qtap_text())
    t0 = time.perf_counter()
    for _ in range(200):
        files.render(GenSpec(), data)
    render_ms = (time.perf_counter() - t0) / 200 * 1000
    f, g = statistics.median(floor), statistics.median(gen)
    print(f"python -c pass          median {f * 1000:7.1f} ms")
    print(f"qtap-fluent gen         median {g * 1000:7.1f} ms   ({g / f:.2f}x the floor; "
          f"{(g - f) * 1000:.1f} ms above it)")
    print(f"render only, in process        {render_ms:7.2f} ms")
    print(f"target < 300 ms: {'met' if g < 0.300 else 'NOT met'}")


if __name__ == "__main__":
    main()
