"""The event log on Kafka (or any Kafka-protocol broker) through confluent-kafka.

The producer is idempotent (``enable.idempotence``: no duplicates or reordering on retry) and
keys every message by user_id with librdkafka's ``consistent`` partitioner, crc32(key) mod N,
the same placement as the local log. Consumers commit offsets explicitly, never automatically,
so a checkpoint only covers what the application has processed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from confluent_kafka import Consumer as _KafkaConsumer
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka import Producer as _KafkaProducer
from confluent_kafka.admin import AdminClient, NewTopic

from flywheel.config.models import KafkaConfig
from flywheel.events.log import Message, Record


class KafkaLogError(RuntimeError):
    """A Kafka operation failed; the message says which and why."""


class KafkaProducer:
    """Idempotent, keyed producer for one topic."""

    def __init__(self, config: KafkaConfig, topic: str) -> None:
        self.topic = topic
        self._errors: list[str] = []
        self._producer = _KafkaProducer(
            {
                "bootstrap.servers": config.bootstrap_servers,
                "client.id": config.client_id,
                "enable.idempotence": True,
                "acks": "all",
                "partitioner": "consistent",
                "linger.ms": 5,
                "compression.type": "lz4",
                "log.connection.close": False,
            }
        )

    def _on_delivery(self, err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            self._errors.append(str(err))

    def send(self, key: str | bytes | None, value: bytes, timestamp_ms: int | None = None) -> None:
        kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": self._on_delivery}
        if timestamp_ms is not None:
            kwargs["timestamp"] = timestamp_ms
        while True:
            try:
                self._producer.produce(self.topic, **kwargs)
                break
            except BufferError:  # local queue full: serve delivery reports, then retry
                self._producer.poll(0.1)
        self._producer.poll(0)

    def send_many(self, messages: Iterable[Message]) -> int:
        count = 0
        for key, value, ts in messages:
            self.send(key, value, ts)
            count += 1
        return count

    def flush(self) -> None:
        remaining = self._producer.flush(60)
        if remaining:
            raise KafkaLogError(f"{remaining} message(s) to {self.topic!r} not delivered within 60 s")
        if self._errors:
            errors, self._errors = self._errors, []
            raise KafkaLogError(f"{len(errors)} message(s) to {self.topic!r} failed: {errors[0]}")

    def close(self) -> None:
        self.flush()


class KafkaConsumer:
    """Consumer in a group, with manual partition assignment and explicit commits."""

    def __init__(self, config: KafkaConfig, topic: str, group: str, partitions: Sequence[int]) -> None:
        self.topic = topic
        self._consumer = _KafkaConsumer(
            {
                "bootstrap.servers": config.bootstrap_servers,
                "client.id": config.client_id,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
                "log.connection.close": False,
            }
        )
        committed = self._consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=30)
        self._positions = {tp.partition: max(tp.offset, 0) for tp in committed}
        self._consumer.assign([TopicPartition(topic, p, self._positions[p]) for p in partitions])

    def poll(self, max_records: int = 1000, timeout_s: float = 0.0) -> list[Record]:
        messages = self._consumer.consume(num_messages=max_records, timeout=max(timeout_s, 0.001))
        out: list[Record] = []
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaLogError(f"consuming {self.topic!r}: {err}")
            partition, offset = msg.partition(), msg.offset()
            if partition is None or offset is None:
                continue
            out.append(Record(self.topic, partition, offset, msg.key(), msg.value() or b"", msg.timestamp()[1]))
            self._positions[partition] = offset + 1
        return out

    def commit(self) -> None:
        offsets = [TopicPartition(self.topic, p, o) for p, o in self._positions.items()]
        if offsets:
            self._consumer.commit(offsets=offsets, asynchronous=False)

    def positions(self) -> dict[int, int]:
        return dict(self._positions)

    def lag(self) -> dict[int, int]:
        out = {}
        for p, pos in self._positions.items():
            _low, high = self._consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)
            out[p] = max(0, high - pos)
        return out

    def seek(self, partition: int, offset: int) -> None:
        self._positions[partition] = offset
        self._consumer.assign([TopicPartition(self.topic, p, o) for p, o in self._positions.items()])

    def close(self) -> None:
        self._consumer.close()


class KafkaEventLog:
    """Topics on a Kafka cluster."""

    def __init__(self, config: KafkaConfig, *, partitions: int = 8) -> None:
        self.config = config
        self.partitions = partitions
        self._admin = AdminClient({"bootstrap.servers": config.bootstrap_servers, "client.id": config.client_id})

    def topic_partitions(self, topic: str) -> int:
        """Partition count of an existing topic."""
        # list all topics: asking for one by name may auto-create it on some brokers
        metadata = self._admin.list_topics(timeout=30)
        info = metadata.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            raise KafkaLogError(f"topic {topic!r} does not exist on {self.config.bootstrap_servers}")
        return len(info.partitions)

    def create_topic(self, name: str, partitions: int | None = None) -> None:
        futures = self._admin.create_topics(
            [
                NewTopic(
                    name,
                    num_partitions=partitions or self.partitions,
                    replication_factor=self.config.replication_factor,
                )
            ]
        )
        for future in futures.values():
            try:
                future.result(timeout=30)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise KafkaLogError(f"cannot create topic {name!r}: {exc}") from exc
        deadline = time.monotonic() + 30
        while True:  # metadata propagates asynchronously
            try:
                self.topic_partitions(name)
                return
            except KafkaLogError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def producer(self, topic: str) -> KafkaProducer:
        self.create_topic(topic)
        return KafkaProducer(self.config, topic)

    def consumer(self, topic: str, group: str, partitions: Sequence[int] | None = None) -> KafkaConsumer:
        chosen = list(range(self.topic_partitions(topic))) if partitions is None else list(partitions)
        return KafkaConsumer(self.config, topic, group, chosen)

    def end_offsets(self, topic: str) -> dict[int, int]:
        count = self.topic_partitions(topic)
        probe = _KafkaConsumer({"bootstrap.servers": self.config.bootstrap_servers, "group.id": "flywheel-offsets"})
        try:
            return {p: probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(count)}
        finally:
            probe.close()

    def close(self) -> None:
        """Nothing to release: producers and consumers are closed by their owners."""
