"""Fixtures of the feature-platform integration tests: one SparkSession.

The redis-server fixture `redis_url` is shared by all integration tests (tests/integration/conftest.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """One local SparkSession for the whole test session (starting one costs about 5 s)."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from flywheel.features.spark_job import spark_session

    # a local session runs without whole-stage code generation and adaptive re-planning (spark_session)
    session = spark_session("local[2]", shuffle_partitions=2, app_name="flywheel-tests")
    yield session
    session.stop()
