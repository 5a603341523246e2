"""Fixtures for serve tests: a moto server process, S3 client, cleanup of serve processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from serve_helpers import AWS_ENV, Serve, free_port, wait_port


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    for k, v in AWS_ENV.items():
        os.environ.setdefault(k, v)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **AWS_ENV})
    try:
        wait_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def s3(moto_endpoint: str) -> Any:
    from qtap_fluent.sinks.s3 import make_client

    return make_client(endpoint=moto_endpoint)


@pytest.fixture
def serve_procs() -> Iterator[list[Serve]]:
    procs: list[Serve] = []
    yield procs
    for p in procs:
        if p.proc.poll() is None:
            p.stop(signal.SIGKILL)


