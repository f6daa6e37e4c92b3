"""The topic interface of the event log, and the factory that picks an implementation.

Two implementations share it: :mod:`flywheel.events.local_log` (partitioned append-only files,
the embedded default) and :mod:`flywheel.events.kafka_log` (Kafka through confluent-kafka).
Both place a key in partition ``crc32(key) mod N`` (librdkafka's ``consistent`` partitioner),
so a user's events land in the same partition number in either mode.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from flywheel.config.models import EventLogConfig


@dataclass(frozen=True, slots=True)
class Record:
    """One message of a topic partition."""

    topic: str
    partition: int
    offset: int
    """Position of the record in its partition: 0, 1, 2, ..."""
    key: bytes | None
    value: bytes
    timestamp_ms: int


#: (key, value, timestamp_ms or None for now)
Message = tuple[str | bytes | None, bytes, int | None]


def partition_for(key: str | bytes | None, partitions: int) -> int:
    """Partition of a key: crc32(key) mod N, as librdkafka's ``consistent`` partitioner.

    A None key goes to partition 0 (locally) so that unkeyed writes stay ordered.
    """
    if key is None:
        return 0
    raw = key.encode() if isinstance(key, str) else key
    return zlib.crc32(raw) % partitions


class Producer(Protocol):
    """Appends messages to one topic."""

    def send(self, key: str | bytes | None, value: bytes, timestamp_ms: int | None = None) -> None:
        """Append one message (buffered until :meth:`flush`)."""

    def send_many(self, messages: Iterable[Message]) -> int:
        """Append many messages; returns how many."""

    def flush(self) -> None:
        """Make every sent message durable and visible to consumers."""

    def close(self) -> None:
        """Flush and release resources."""


class Consumer(Protocol):
    """Reads one topic as a member of a consumer group, with committed positions."""

    def poll(self, max_records: int = 1000, timeout_s: float = 0.0) -> list[Record]:
        """Up to ``max_records`` records after the current positions."""

    def commit(self) -> None:
        """Checkpoint the positions after the records returned so far."""

    def positions(self) -> dict[int, int]:
        """Next offset to read, per partition."""

    def lag(self) -> dict[int, int]:
        """Records behind the head, per partition."""

    def seek(self, partition: int, offset: int) -> None:
        """Move the position of one partition."""

    def close(self) -> None:
        """Release resources (does not commit)."""


class EventLog(Protocol):
    """A set of partitioned topics."""

    partitions: int

    def create_topic(self, name: str, partitions: int | None = None) -> None:
        """Create a topic if it does not exist."""

    def producer(self, topic: str) -> Producer:
        """A producer for ``topic`` (created when missing)."""

    def consumer(self, topic: str, group: str, partitions: Sequence[int] | None = None) -> Consumer:
        """A consumer of ``topic`` in ``group`` resuming from the group's committed positions."""

    def end_offsets(self, topic: str) -> dict[int, int]:
        """The next offset that will be written, per partition."""

    def close(self) -> None:
        """Release resources."""


def open_event_log(config: EventLogConfig) -> EventLog:
    """The event log the configuration names."""
    if config.backend == "kafka":
        from flywheel.events.kafka_log import KafkaEventLog

        return KafkaEventLog(config.kafka, partitions=config.partitions)
    from flywheel.events.local_log import LocalEventLog

    return LocalEventLog(config.local.path, partitions=config.partitions, fsync=config.local.fsync)
