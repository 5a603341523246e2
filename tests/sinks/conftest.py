"""Fixtures for sink tests: clients talking to the moto server process (tests/conftest.py)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest


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
