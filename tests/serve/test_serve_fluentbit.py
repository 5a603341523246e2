"""Fluent Bit's real forward output -> serve -> moto S3 (skipped without a fluent-bit binary)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from serve_helpers import Serve, free_port

pytestmark = [pytest.mark.fluentbit,
              pytest.mark.skipif(shutil.which("fluent-bit") is None,
                                 reason="needs a fluent-bit binary on PATH")]


def records_in(port: int) -> int:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith("qtap_fluent_serve_records_in_total "):
            return int(float(line.split()[1]))
    return 0


def test_fluent_bit_forward_to_serve_to_s3(tmp_path: Path, s3: Any, moto_endpoint: str,
                                           serve_procs: list[Serve]) -> None:
    bucket = "fb-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    metrics = free_port()
    serve = Serve(["--listen", "127.0.0.1:0", "--output", "s3", "--bucket", bucket,
                   "--endpoint", moto_endpoint, "--spool", str(tmp_path / "spool"),
                   "--metrics-listen", f"127.0.0.1:{metrics}"], tmp_path / "serve.log")
    serve_procs.append(serve)
    conf = tmp_path / "fb.conf"
    conf.write_text(f"""\
[SERVICE]
    Flush        0.2
    Log_Level    info
[INPUT]
    Name         dummy
    Tag          qtap.http
    Dummy        {{"request":{{"method":"GET","url":"https://api.test/"}},"response":{{"status":200}}}}
    Samples      50
    Rate         200
[OUTPUT]
    Name         forward
    Match        *
    Host         127.0.0.1
    Port         {serve.port}
    Require_ack_response true
""")
    with open(tmp_path / "fb.log", "wb") as log:
        fb = subprocess.Popen(["fluent-bit", "-c", str(conf)], stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 60
            while records_in(metrics) < 50 and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            fb.send_signal(signal.SIGTERM)
            try:
                fb.wait(30)
            except subprocess.TimeoutExpired:
                fb.kill()
                fb.wait()
    assert records_in(metrics) == 50
    assert serve.stop(signal.SIGTERM) == 0
    got: list[dict[str, Any]] = []
    for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        assert item["Key"].startswith("fluent-bit-logs/qtap.http/")
        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        got.extend(json.loads(x) for x in body.splitlines())
    assert len(got) == 50
    assert all(r["response"] == {"status": 200} and isinstance(r["date"], float) for r in got)
