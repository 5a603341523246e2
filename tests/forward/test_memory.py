"""retain_freed_memory(): batch buffers freed and allocated again stop faulting pages in."""

from __future__ import annotations

import subprocess
import sys

import pytest

from qtap_fluent.fluentbit.forward.memory import retain_freed_memory

# The client's memory pattern: 1 MiB buffers grown by msgspec's encode_into, ~20 alive (sent,
# waiting for acks), the oldest freed as the next one fills. Run in a fresh interpreter each
# time: mallopt() changes the whole process.
SCRIPT = """
import resource, sys
from collections import deque
import msgspec
from qtap_fluent.fluentbit.forward.memory import retain_freed_memory
if sys.argv[1] == "tuned" and not retain_freed_memory():
    print("unsupported")
    raise SystemExit
encode_into = msgspec.msgpack.Encoder().encode_into
record = {"body": "x" * 2200}
live = deque()
def cycle():
    buf = bytearray()
    while len(buf) < 1 << 20:
        encode_into(record, buf, -1)
    live.append(buf)
    if len(live) > 20:
        live.popleft()
for _ in range(40):  # up to the high-water mark
    cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(200):
    cycle()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> str:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True,
                         text=True, timeout=120, check=True)
    return out.stdout.strip()


def test_freed_batch_buffers_are_reused_without_page_faults() -> None:
    tuned = page_faults("tuned")
    if tuned == "unsupported":
        pytest.skip("no glibc mallopt here")
    default = int(page_faults("default"))
    assert default >= 100  # glibc's defaults hand these buffers back and fault them in again
    assert int(tuned) <= default // 10


def test_thresholds_are_checked() -> None:
    with pytest.raises(ValueError, match="thresholds"):
        retain_freed_memory(trim_threshold=-1)
    with pytest.raises(ValueError, match="thresholds"):
        retain_freed_memory(mmap_threshold=1 << 40)
