"""``serve`` as a real process: forward in over TCP, acks, outputs, metrics, signals, kill -9."""

from __future__ import annotations

import gzip
import json
import re
import signal
import threading
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from serve_helpers import Sender, Serve, free_port


def recs(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"i": i, "request": {"method": "GET", "url": f"https://api.test/x/{i}",
                                 "headers": {"Authorization": "Bearer secret"}},
             "response": {"status": 200 if i % 2 else 503}} for i in range(start, start + n)]


def test_file_output_acks_metrics_and_sigterm(tmp_path: Path, serve_procs: list[Serve]) -> None:
    out = tmp_path / "out.jsonl"
    cfg = tmp_path / "serve.yaml"
    metrics_port = free_port()
    cfg.write_text(f"""\
listen: 127.0.0.1:0
metrics_listen: 127.0.0.1:{metrics_port}
filters:
  - name: redact
    match: "qtap.*"
  - name: drop
    match: "qtap.*"
    rule: http.res.status >= 500
outputs:
  - name: file
    match_regex: "^qtap\\\\."
    path: {out}
    json_date_key: false
  - name: stdout
    match: other
""")
    serve = Serve(["--config", str(cfg)], tmp_path / "serve.log")
    serve_procs.append(serve)
    sender = Sender(serve.port)
    assert sender.send("qtap.http", recs(10))
    assert sender.send("qtap.http", recs(10, 10))
    assert sender.send("unrouted", recs(3))
    sender.close()
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["i"] for r in lines] == [i for i in range(20) if i % 2]  # 503s dropped
    assert all(r["request"]["headers"]["Authorization"] != "Bearer secret" for r in lines)
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read()
    metrics = text.decode()
    assert "qtap_fluent_serve_records_in_total 23" in metrics
    assert "qtap_fluent_serve_records_unrouted_total 3" in metrics
    assert 'qtap_fluent_serve_plugin_dropped_total{plugin="drop.0",kind="filter"} 10' in metrics
    assert serve.stop(signal.SIGTERM) == 0
    log = serve.log.read_text()
    assert log.count("listening for forward on 127.0.0.1:") == 1
    assert "Traceback" not in log


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_flags_only_s3_flushes_on_signal(tmp_path: Path, s3: Any, moto_endpoint: str,
                                         serve_procs: list[Serve], sig: int) -> None:
    bucket = "serve-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    serve = Serve(["--listen", "127.0.0.1:0", "--output", "s3", "--bucket", bucket,
                   "--endpoint", moto_endpoint, "--spool", str(tmp_path / "spool")],
                  tmp_path / "serve.log")
    serve_procs.append(serve)
    sender = Sender(serve.port)
    assert sender.send("qtap.http", recs(5))
    sender.close()
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0  # held until rotation
    assert serve.stop(sig) == 0
    [obj] = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert obj["Key"].startswith("fluent-bit-logs/qtap.http/")
    body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    got = [json.loads(x) for x in body.splitlines()]
    assert [{k: v for k, v in r.items() if k != "date"} for r in got] == recs(5)


def test_bad_config_is_one_clear_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    cfg = tmp_path / "serve.yaml"
    cfg.write_text("listen: 127.0.0.1:0\noutputs:\n  - name: s4\n    match: '*'\n")
    proc = subprocess.run([sys.executable, "-m", "qtap_fluent.serve", "--config", str(cfg)],
                          check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert f"{cfg}:3:11: error: unknown output 's4'" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "qtap_fluent.serve", "--output", "s3"],
                          check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--output s3 needs --bucket" in proc.stderr


def all_records(s3: Any, bucket: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            out.extend(json.loads(x) for x in gzip.decompress(body).splitlines())
    return out


def test_sigkill_while_writing_loses_no_acked_record_and_duplicates_none(
        tmp_path: Path, s3: Any, moto_endpoint: str, serve_procs: list[Serve]) -> None:
    bucket = "kill-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(f"""\
listen: 127.0.0.1:0
spool: {tmp_path / 'spool'}
flush_interval: 0.05
outputs:
  - name: s3
    match: "*"
    bucket: {bucket}
    endpoint: {moto_endpoint}
    total_file_size: 20K
    upload_timeout: 0.2s
    compression: gzip
    s3_key_format: /k/$TAG/%Y%m%d/$INDEX-$UUID.gz
""")
    serve = Serve(["--config", str(cfg)], tmp_path / "serve1.log")
    serve_procs.append(serve)
    acked: list[int] = []
    unacked: list[list[dict[str, Any]]] = []
    stop = threading.Event()

    def send_until_killed() -> None:
        sender = Sender(serve.port, timeout=10)
        n = 0
        while not stop.is_set():
            chunk = recs(20, n)
            if sender.send("qtap.http", chunk):
                acked.extend(r["i"] for r in chunk)
            else:
                unacked.append(chunk)
                break
            n += 20
        sender.close()

    t = threading.Thread(target=send_until_killed)
    t.start()
    deadline = time.monotonic() + 120
    while len(acked) < 2000:  # objects are being spooled, sealed and uploaded meanwhile
        assert t.is_alive() and time.monotonic() < deadline, "sender stopped early"
        time.sleep(0.01)
    serve.stop(signal.SIGKILL)
    stop.set()
    t.join(30)
    assert serve.proc.returncode == -signal.SIGKILL
    # Restart on the same spool; resend what was not acked, as Fluent Bit would.
    again = Serve(["--config", str(cfg)], tmp_path / "serve2.log")
    serve_procs.append(again)
    sender = Sender(again.port)
    for chunk in unacked:
        assert sender.send("qtap.http", chunk)
    sender.close()
    assert again.stop(signal.SIGTERM) == 0
    assert re.search(r"s3: recovered [1-9]\d* object", again.log.read_text())
    seen = Counter(r["i"] for r in all_records(s3, bucket))
    missing = [i for i in acked if seen[i] == 0]
    twice = [i for i in acked if seen[i] > 1]
    assert not missing, f"{len(missing)} acked records lost"
    assert not twice, f"{len(twice)} acked records stored twice"
    assert all(seen[r["i"]] >= 1 for chunk in unacked for r in chunk)


def test_output_that_cannot_start_is_one_clear_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    proc = subprocess.run([sys.executable, "-m", "qtap_fluent.serve", "--listen",
                           "127.0.0.1:0", "--output", "s3", "--bucket", "b", "--spool",
                           str(blocker / "spool")],
                          check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "error: output s3.0: s3: spool" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cloudwatch_output_from_flags(tmp_path: Path, moto_endpoint: str,
                                      serve_procs: list[Serve]) -> None:
    from qtap_fluent.sinks.cloudwatch import make_client

    group = "serve-" + uuid.uuid4().hex[:8]
    serve = Serve(["--listen", "127.0.0.1:0", "--output", "cloudwatch", "--log-group", group,
                   "--endpoint", moto_endpoint], tmp_path / "serve.log")
    serve_procs.append(serve)
    sender = Sender(serve.port)
    now = time.time()
    assert sender.send("qtap.http", recs(3), t=now)
    sender.close()
    assert serve.stop(signal.SIGTERM) == 0
    logs = make_client(endpoint=moto_endpoint)
    events = logs.get_log_events(logGroupName=group, logStreamName="serve-qtap.http",
                                 startFromHead=True)["events"]
    assert [json.loads(e["message"]) for e in events] == recs(3)
    assert all(e["timestamp"] == int(now * 1000) for e in events)


def test_serve_chained_through_forward_output(tmp_path: Path,
                                              serve_procs: list[Serve]) -> None:
    out = tmp_path / "out.jsonl"
    last = Serve(["--listen", "127.0.0.1:0", "--output", "file", "--file", str(out)],
                 tmp_path / "last.log")
    serve_procs.append(last)
    cfg = tmp_path / "first.yaml"
    cfg.write_text(f"""\
listen: 127.0.0.1:0
filters:
  - name: enrich
    match: "*"
outputs:
  - name: forward
    match: "*"
    host: 127.0.0.1
    port: {last.port}
""")
    first = Serve(["--config", str(cfg)], tmp_path / "first.log")
    serve_procs.append(first)
    sender = Sender(first.port)
    assert sender.send("qtap.http", recs(4))  # acked only once the next stage acked
    sender.close()
    got = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["i"] for r in got] == [0, 1, 2, 3]
    assert got[0]["enrich"]["host"] == "api.test" and got[0]["enrich"]["status_class"] == "5xx"
    assert first.stop() == 0 and last.stop() == 0
