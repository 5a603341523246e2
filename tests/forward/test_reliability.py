"""At-least-once delivery: the receiver process is killed and restarted 5 times while the
client sends 100,000 records with acks on. Every record must arrive; duplicates are reported."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from qtap_fluent.fluentbit.forward.client import ForwardClient

from .conftest import free_port

RECEIVER = Path(__file__).with_name("receiver_proc.py")
TOTAL = 100_000
KILLS = 5


def start_receiver(port: int, out: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, str(RECEIVER), str(port), str(out)],
                            stdout=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready"
    return proc


def received(out: Path) -> list[int]:
    data = out.read_bytes() if out.exists() else b""
    return [v for (v,) in struct.iter_unpack(">I", data[: len(data) // 4 * 4])]


@pytest.mark.slow
def test_kill_and_restart_receiver_five_times(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "received.bin"
    proc = start_receiver(port, out)
    client = ForwardClient("127.0.0.1", port, batch_records=500, max_in_flight=4,
                           ack_timeout=5.0, backoff_base=0.02, backoff_max=0.2,
                           queue_max_records=20_000)
    done = threading.Event()

    def produce() -> None:
        for i in range(TOTAL):
            client.emit("rel", {"i": i, "pad": "p" * 100})
        done.set()

    threading.Thread(target=produce, daemon=True).start()
    kills = 0
    deadline = time.monotonic() + 120
    try:
        # Kill each time another ~1/7 of the records has been stored by the receiver.
        while kills < KILLS and time.monotonic() < deadline:
            if len(set(received(out))) >= (kills + 1) * TOTAL // (KILLS + 2):
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                time.sleep(0.1)
                proc = start_receiver(port, out)
            time.sleep(0.005)
        assert done.wait(max(1.0, deadline - time.monotonic()))
        assert client.close(timeout=60)
    finally:
        proc.terminate()
        proc.wait()
    counts = Counter(received(out))
    duplicates = sum(c - 1 for c in counts.values())
    print(f"\nreliability: {TOTAL} records, {kills} receiver kills, "
          f"{duplicates} duplicates, client {client.stats.as_dict()}")
    assert kills == KILLS
    assert set(counts) == set(range(TOTAL))  # every record arrived at least once
    assert client.stats.dropped_records == 0
