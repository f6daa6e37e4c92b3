"""Reading the events of the log for an analysis, without disturbing any consumer group.

A throw-away group reads every partition from offset 0 up to the end offsets seen at the start
and never commits, so no other consumer's positions move.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import orjson
import pandas as pd

from flywheel.events.log import EventLog
from flywheel.experiments.metrics import events_frame

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any


def _decoded(log: EventLog, topic: str, batch: int) -> Iterator[dict[str, Any]]:
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
                    try:
                        yield orjson.loads(record.value)
                    except orjson.JSONDecodeError:
                        continue  # the validator routes malformed payloads to the DLQ
    finally:
        consumer.close()


def read_events(log: EventLog, topic: str = "events", *, batch: int = 10_000) -> pd.DataFrame:
    """Every event of ``topic`` as a frame (:func:`flywheel.experiments.metrics.events_frame`)."""
    return events_frame(_decoded(log, topic, batch))
