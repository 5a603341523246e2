"""Fixtures for sink tests: a real moto server process on 127.0.0.1 and clients talking to it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server subprocess; its URL. Real HTTP, real botocore signing and parsing."""
    for k, v in AWS_ENV.items():
        os.environ.setdefault(k, v)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **AWS_ENV})
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def s3_client(moto_endpoint: str) -> Any:
    from qtap_fluent.sinks.s3 import make_client

    return make_client(region="us-east-1", endpoint=moto_endpoint)


@pytest.fixture
def bucket(s3_client: Any) -> str:
    name = "b-" + uuid.uuid4().hex[:12]
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def logs_client(moto_endpoint: str) -> Any:
    from qtap_fluent.sinks.cloudwatch import make_client

    return make_client(region="us-east-1", endpoint=moto_endpoint)
