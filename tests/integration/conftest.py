"""Fixtures that start real local servers on 127.0.0.1 for the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.services import kafka_broker as _kafka_broker
from tests.support.services import redis_server as _redis_server


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """bootstrap.servers of a real Kafka-protocol broker (tansu) started for this test session."""
    with _kafka_broker() as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """host:port of a real redis-server (Debian package) started for this test session, no persistence."""
    with _redis_server() as url:
        yield url
