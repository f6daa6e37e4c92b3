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


def _decoded(log: EventLog, topic: str, batch: int) -> Iterator[dict[str, Any]]:
    validator = EventValidator()
    ends = log.end_offsets(topic)
    consumer = log.consumer(topic, f"flywheel-experiments-{uuid.uuid4().hex[:12]}")
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
                    # invalid events belong to the dead-letter topic, not to any metric
                    result = validator.validate_bytes(record.value, now_ms=record.timestamp_ms)
                    if result.event is not None:
                        yield result.event
    finally:
        consumer.close()


def read_events(log: EventLog, topic: str = "events", *, batch: int = 10_000) -> pd.DataFrame:
    """Every event of ``topic`` as a frame (:func:`flywheel.experiments.metrics.events_frame`)."""
    return events_frame(_decoded(log, topic, batch))
