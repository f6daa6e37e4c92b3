"""Fixtures that start real local servers on 127.0.0.1 for the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.services import kafka_broker as _kafka_broker


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """bootstrap.servers of a real Kafka-protocol broker (tansu) started for this test session."""
    with _kafka_broker() as bootstrap:
        yield bootstrap
