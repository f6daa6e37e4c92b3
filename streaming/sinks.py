"""Sinks of the streaming dataflow: the dead-letter and late topics, the features, the report.

The topic sink writes each record exactly once even across crashes: its resume state is the
end offset of every partition of the output topic at the last snapshot, and when it is rebuilt
it reads what was written after that point (by the run that crashed) and skips the records whose
source coordinates it finds there, as the replay produces them again. That needs a log it can read
back by offset (the local log); on Kafka the topic sink is at-least-once across crashes (the
records carry their source coordinates, so a reader can drop repeats; Kafka transactions would
make it exactly-once).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from bytewax.outputs import DynamicSink, FixedPartitionedSink, StatefulSinkPartition, StatelessSinkPartition

from flywheel.events.log import EventLog
from flywheel.stream.reconcile import Counts, describe
from flywheel.stream.records import Coordinates, coordinates_of
from monitoring.metrics import STREAM_FEATURES_PUSHED, STREAM_RUN_BALANCED, STREAM_RUN_EVENTS

#: An output record: (key, value, source coordinates).
TopicItem = tuple[bytes | None, bytes, Coordinates]


class _TopicPartition(StatefulSinkPartition[TopicItem, dict[int, int]]):
    def __init__(self, log: EventLog, topic: str, resume: dict[int, int] | None) -> None:
        self._log = log
        self._topic = topic
        log.create_topic(topic)
        self._producer = log.producer(topic)
        self._written = self._written_since(resume)

    def _written_since(self, resume: dict[int, int] | None) -> set[Coordinates]:
        read = getattr(self._log, "read", None)
        if read is None:  # Kafka: at-least-once across crashes (see the module docstring)
            return set()
        ends = self._log.end_offsets(self._topic)
        seen: set[Coordinates] = set()
        for partition, end in ends.items():
            offset = (resume or {}).get(partition, 0)
            while offset < end:
                batch = read(self._topic, partition, offset, 10_000)
                if not batch:
                    break
                for rec in batch:
                    coords = coordinates_of(rec.value)
                    if coords is not None:
                        seen.add(coords)
                offset = batch[-1].offset + 1
        return seen

    def write_batch(self, values: list[TopicItem]) -> None:
        messages = []
        for key, value, coords in values:
            if self._written and coords in self._written:
                self._written.discard(coords)
                continue
            messages.append((key, value, None))
        if messages:
            self._producer.send_many(messages)
            self._producer.flush()

    def snapshot(self) -> dict[int, int]:
        return self._log.end_offsets(self._topic)

    def close(self) -> None:
        self._producer.close()
        self._log.close()


class TopicSink(FixedPartitionedSink[TopicItem, dict[int, int]]):
    """Writes records to one topic of the event log, once each.

    The whole topic is one sink partition, so a single worker writes it (the local log allows one
    writer per topic). Items must be keyed ``"all"``.

    Args:
        open_log: Opens the event log (called on the worker that writes).
        topic: The topic written.
    """

    def __init__(self, open_log: Callable[[], EventLog], topic: str) -> None:
        self._open_log = open_log
        self._topic = topic

    def list_parts(self) -> list[str]:
        return ["all"]

    def build_part(self, step_id: str, for_part: str, resume_state: dict[int, int] | None) -> _TopicPartition:
        return _TopicPartition(self._open_log(), self._topic, resume_state)


class _FeatureTablePartition(StatelessSinkPartition[tuple[str, dict[str, Any]]]):
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=60)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS features (view TEXT NOT NULL, entity TEXT NOT NULL,"
            " as_of_ms INTEGER NOT NULL, value_json TEXT NOT NULL, PRIMARY KEY (view, entity))"
        )
        self._db.commit()

    def write_batch(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        rows = []
        for view, row in items:
            entity = row["user_id"] if "user_id" in row else row["content_id"]
            rows.append((view, entity, row["event_timestamp"], orjson.dumps(row).decode()))
            STREAM_FEATURES_PUSHED.labels(view=view).inc()
        self._db.executemany(
            "INSERT INTO features VALUES (?, ?, ?, ?) ON CONFLICT (view, entity) DO UPDATE SET"
            " as_of_ms = excluded.as_of_ms, value_json = excluded.value_json"
            " WHERE excluded.as_of_ms >= features.as_of_ms",
            rows,
        )
        self._db.commit()

    def close(self) -> None:
        self._db.close()


class FeatureTableSink(DynamicSink[tuple[str, dict[str, Any]]]):
    """The latest feature row per (view, entity) in a SQLite table: the newest ``as_of`` wins.

    Writing the same row again changes nothing, so replays after a crash are harmless.
    """

    def __init__(self, path: Path) -> None:
        self._path = Path(path)

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _FeatureTablePartition:
        return _FeatureTablePartition(self._path)


def read_feature_table(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Every row of a feature table, by (view, entity)."""
    with sqlite3.connect(path) as db:
        return {
            (view, entity): json.loads(value)
            for view, entity, value in db.execute("SELECT view, entity, value_json FROM features")
        }


class _ReportPartition(StatelessSinkPartition[dict[str, Any]]):
    def __init__(self, path: Path) -> None:
        self._path = path

    def write_batch(self, items: list[dict[str, Any]]) -> None:
        for summary in items:
            counts = Counts.from_dict(summary)
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._path.write_text(json.dumps({**counts.to_dict(), "summary": describe(counts)}, indent=2))
            for outcome, value in (
                ("in", counts.received), ("processed", counts.processed), ("dlq", counts.dlq_total),
                ("late", counts.late), ("duplicates", counts.duplicates),
            ):
                STREAM_RUN_EVENTS.labels(outcome=outcome).set(value)
            STREAM_RUN_BALANCED.set(1 if counts.balanced else 0)


class ReportSink(DynamicSink[dict[str, Any]]):
    """Writes the reconciliation of a run (the merged counts) as JSON and as metrics."""

    def __init__(self, path: Path) -> None:
        self._path = Path(path)

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _ReportPartition:
        return _ReportPartition(self._path)
