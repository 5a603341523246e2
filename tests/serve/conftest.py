"""Fixtures for serve tests: a moto server process, S3 client, cleanup of serve processes."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest
from serve_helpers import Serve


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


