"""Sources of the streaming dataflow: the local event log, and Kafka through Bytewax's connector.

Each partition of the events topic is one Bytewax source partition whose resume state is the
next offset to read. Bytewax snapshots it in the same epoch as the operators' state, so after a
crash the dataflow resumes from a consistent pair of (offsets, state).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from flywheel.events.local_log import LocalEventLog
from flywheel.events.log import Record
from monitoring.metrics import STREAM_CONSUMER_LAG

_LAG_REFRESH_S = 1.0


class _LocalLogPartition(StatefulSourcePartition[Record, int]):
    """Reads one partition of a local-log topic from an offset, in batches."""

    def __init__(
        self, log: LocalEventLog, topic: str, partition: int, offset: int, *, batch_size: int, until_end: bool
    ) -> None:
        self._log = log
        self._topic = topic
        self._partition = partition
        self._offset = offset
        self._batch_size = batch_size
        self._end = log.end_offsets(topic)[partition] if until_end else None
        self._head = self._end if self._end is not None else self._offset
        self._head_checked = 0.0
        self._awake: datetime | None = None
        # a consumer keeps its read cursor between batches (no seek through the index each time);
        # its group positions are never committed: the offset lives in Bytewax's snapshots
        self._reader = log.consumer(topic, group="flywheel-stream", partitions=[partition])
        self._reader.seek(partition, offset)
        self._lag = STREAM_CONSUMER_LAG.labels(topic=topic, partition=str(partition))

    def next_batch(self) -> list[Record]:
        if self._end is not None and self._offset >= self._end:
            self._lag.set(0)
            raise StopIteration
        limit = self._batch_size if self._end is None else min(self._batch_size, self._end - self._offset)
        batch = self._reader.poll(limit)
        if batch:
            self._offset = batch[-1].offset + 1
            self._awake = None
        else:
            self._awake = datetime.now(UTC) + timedelta(milliseconds=50)
        now = time.monotonic()
        if self._end is None and now - self._head_checked >= _LAG_REFRESH_S:
            self._head = self._log.end_offsets(self._topic)[self._partition]
            self._head_checked = now
        self._lag.set(max(0, self._head - self._offset))
        return batch

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> int:
        return self._offset

    def close(self) -> None:
        self._reader.close()


class LocalLogSource(FixedPartitionedSource[Record, int]):
    """Every partition of one topic of the local log.

    Args:
        root: The folder of the local log.
        topic: The topic to read (`events`).
        batch_size: Records per read.
        until_end: Stop at the end each partition had when the dataflow started (a finite run);
            otherwise follow the log.
    """

    def __init__(self, root: Path, topic: str, *, batch_size: int = 1000, until_end: bool = True) -> None:
        self._root = Path(root)
        self._topic = topic
        self._batch_size = batch_size
        self._until_end = until_end

    def list_parts(self) -> list[str]:
        count = LocalEventLog(self._root).topic_partitions(self._topic)
        return [str(p) for p in range(count)]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _LocalLogPartition:
        log = LocalEventLog(self._root)
        return _LocalLogPartition(
            log, self._topic, int(for_part), resume_state or 0,
            batch_size=self._batch_size, until_end=self._until_end,
        )


class _KafkaLagPartition(StatefulSourcePartition[Any, Any]):
    """Bytewax's Kafka partition, also reporting the lag to Flywheel's metric about once a second
    (from the first batch that knows both its offset and the high watermark), and 0 at the end
    of a finite run."""

    def __init__(self, inner: StatefulSourcePartition[Any, Any], topic: str, partition: int) -> None:
        self._inner = inner
        self._topic = topic
        self._partition = partition
        self._checked = 0.0
        self._lag = STREAM_CONSUMER_LAG.labels(topic=topic, partition=str(partition))

    def next_batch(self) -> Iterable[Any]:
        try:
            batch = self._inner.next_batch()
        except StopIteration:  # a finite run read its partition to the end
            self._lag.set(0)
            raise
        now = time.monotonic()
        if now - self._checked >= _LAG_REFRESH_S:
            consumer = getattr(self._inner, "_consumer", None)  # bytewax 0.21's partition keeps it here
            if consumer is not None:
                from confluent_kafka import TopicPartition

                _, high = consumer.get_watermark_offsets(TopicPartition(self._topic, self._partition), cached=True)
                offset = self._inner.snapshot()
                if high >= 0 and offset is not None and offset >= 0:
                    self._lag.set(max(0, high - offset))
                    self._checked = now
        return batch

    def next_awake(self) -> datetime | None:
        return self._inner.next_awake()

    def snapshot(self) -> Any:
        return self._inner.snapshot()

    def close(self) -> None:
        self._inner.close()


def kafka_source(
    bootstrap_servers: str, topic: str, *, batch_size: int, tail: bool, client_id: str
) -> FixedPartitionedSource[Any, Any]:
    """Bytewax's Kafka source for ``topic``, exporting the consumer lag as Flywheel's metric.

    Args:
        bootstrap_servers: Comma-separated brokers.
        topic: The topic to read from its beginning (or the recovered offsets).
        batch_size: Messages per poll.
        tail: Keep waiting for new messages at the end (else stop at the end of each partition).
        client_id: Client id reported to the brokers.
    """
    from bytewax.connectors.kafka import KafkaSource

    class _Source(KafkaSource):
        def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> Any:
            inner = super().build_part(step_id, for_part, resume_state)
            idx, name = for_part.split("-", 1)
            return _KafkaLagPartition(inner, name, int(idx))

    return _Source(
        brokers=bootstrap_servers.split(","), topics=[topic], tail=tail, batch_size=batch_size,
        add_config={"client.id": client_id},
    )


def record_from_kafka(message: object) -> Record:
    """A Bytewax Kafka message as a log :class:`~flywheel.events.log.Record`.

    The log timestamp is the message's (create or append) time, the receiver clock of the
    clock-skew rule.
    """
    stamp = getattr(message, "timestamp", None)
    ts = int(stamp[1]) if stamp and stamp[1] is not None and stamp[1] >= 0 else 0
    return Record(
        topic=str(message.topic),  # type: ignore[attr-defined]
        partition=int(message.partition),  # type: ignore[attr-defined]
        offset=int(message.offset),  # type: ignore[attr-defined]
        key=message.key,  # type: ignore[attr-defined]
        value=message.value or b"",  # type: ignore[attr-defined]
        timestamp_ms=ts,
    )


def check_kafka(bootstrap_servers: str, topic: str, *, timeout_s: float = 10.0) -> int:
    """Check that the brokers answer and ``topic`` exists; returns its partition count.

    Bytewax's Kafka connector retries an unreachable broker forever, printing connection errors,
    so entry points call this first.

    Raises:
        RuntimeError: No broker answered within ``timeout_s``, or the topic does not exist.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log.connection.close": False, "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise RuntimeError(f"Kafka at {bootstrap_servers} is not reachable: {exc}") from exc
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        raise RuntimeError(f"topic {topic!r} does not exist on {bootstrap_servers}")
    return len(found.partitions)
