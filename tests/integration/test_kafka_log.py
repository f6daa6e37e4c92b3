"""The Kafka event log against a real Kafka-protocol broker (tansu) on 127.0.0.1."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict

import pytest

from flywheel.config.models import KafkaConfig
from flywheel.events.kafka_log import KafkaEventLog
from flywheel.events.log import partition_for

pytestmark = pytest.mark.integration


def consume(log: KafkaEventLog, topic: str, group: str, expected: int, timeout_s: float = 30.0) -> list:
    consumer = log.consumer(topic, group)
    out: list = []
    deadline = time.monotonic() + timeout_s
    while len(out) < expected and time.monotonic() < deadline:
        out.extend(consumer.poll(1000, timeout_s=0.5))
    consumer.commit()
    consumer.close()
    return out


def test_round_trip_keyed_by_user_in_the_same_partitions_as_the_local_log(kafka_bootstrap: str) -> None:
    log = KafkaEventLog(KafkaConfig(bootstrap_servers=kafka_bootstrap), partitions=4)
    topic = f"events-{uuid.uuid4().hex[:8]}"
    producer = log.producer(topic)
    n = 3000
    producer.send_many((f"u{i % 61:06d}", f"{i}".encode(), 1_700_000_000_000 + i) for i in range(n))
    producer.flush()
    records = consume(log, topic, "g1", n)
    assert len(records) == n
    assert len({r.value for r in records}) == n  # idempotent producer: no duplicates
    by_key: dict[bytes, list[int]] = defaultdict(list)
    for r in records:
        assert r.partition == partition_for(r.key, 4)
        by_key[r.key].append(int(r.value))
    for values in by_key.values():
        assert values == sorted(values)  # order per key
    assert {r.timestamp_ms for r in records if r.value == b"0"} == {1_700_000_000_000}


def test_a_group_resumes_after_its_commit(kafka_bootstrap: str) -> None:
    log = KafkaEventLog(KafkaConfig(bootstrap_servers=kafka_bootstrap), partitions=2)
    topic = f"resume-{uuid.uuid4().hex[:8]}"
    producer = log.producer(topic)
    producer.send_many((f"u{i}", f"{i}".encode(), None) for i in range(200))
    producer.flush()
    first = consume(log, topic, "g", 200)
    producer.send_many((f"u{i}", f"{i}".encode(), None) for i in range(200, 260))
    producer.flush()
    second = consume(log, topic, "g", 60)
    assert len(first) == 200
    assert sorted(int(r.value) for r in second) == list(range(200, 260))


def test_missing_topic_is_a_clear_error(kafka_bootstrap: str) -> None:
    log = KafkaEventLog(KafkaConfig(bootstrap_servers=kafka_bootstrap))
    with pytest.raises(Exception, match="does not exist"):
        log.consumer(f"absent-{uuid.uuid4().hex[:6]}", "g")
