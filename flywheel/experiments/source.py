"""Reading the events of the log for an analysis, without disturbing any consumer group.

A throw-away group reads every partition from offset 0 up to the end offsets seen at the start
and never commits, so no other consumer's positions move.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pandas as pd

from flywheel.events.log import EventLog
from flywheel.events.validation import EventValidator
from flywheel.experiments.metrics import events_frame

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any


def read_values(log: EventLog, topic: str, *, batch: int = 10_000) -> Iterator[tuple[bytes, int]]:
    """Every record of ``topic`` as ``(value, log timestamp ms)``, up to the end offsets seen now.

    Reads with a throw-away consumer group that never commits (no other group's positions move).
    """
    ends = log.end_offsets(topic)
    consumer = log.consumer(topic, f"flywheel-analysis-{uuid.uuid4().hex[:12]}")
    try:
        for partition in ends:
            consumer.seek(partition, 0)
        while True:
            positions = consumer.positions()
            if all(positions.get(p, 0) >= end for p, end in ends.items()):
                return
            records = consumer.poll(batch, timeout_s=1.0)
            if not records:
                return
            for record in records:
                if record.offset < ends.get(record.partition, 0):
                    yield record.value, record.timestamp_ms
    finally:
        consumer.close()


def _decoded(log: EventLog, topic: str, batch: int) -> Iterator[dict[str, Any]]:
    validator = EventValidator()
    for value, timestamp_ms in read_values(log, topic, batch=batch):
        # invalid events belong to the dead-letter topic, not to any metric
        result = validator.validate_bytes(value, now_ms=timestamp_ms)
        if result.event is not None:
            yield result.event


def read_events(log: EventLog, topic: str = "events", *, batch: int = 10_000) -> pd.DataFrame:
    """Every event of ``topic`` as a frame (:func:`flywheel.experiments.metrics.events_frame`)."""
    return events_frame(_decoded(log, topic, batch))
