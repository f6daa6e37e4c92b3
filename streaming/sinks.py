"""Sinks of the streaming dataflow: the dead-letter and late topics, the features, the report.

The topic sink writes each record exactly once even across crashes, on the local log and on
Kafka alike: its resume state is the end offset of every partition of the output topic at the
last snapshot, with the records already in the topic that the replay had not yet produced
again then (after an earlier crash). When it is rebuilt it reads what was written after those
offsets (by the run that crashed) and skips the records whose source coordinates it knows, as
the replay produces them again. Every record carries the (topic, partition, offset) it was
read from, which identifies it. On Kafka the read-back goes to the end of each partition (partition EOF,
not the high watermark, which some brokers report late), so an offset noted too low only
makes it read more.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
from bytewax.outputs import DynamicSink, FixedPartitionedSink, StatefulSinkPartition, StatelessSinkPartition

from flywheel.events.log import EventLog
from flywheel.stream.processor import TopicItem
from flywheel.stream.reconcile import Counts, describe, describe_run
from flywheel.stream.records import coordinates_of
from monitoring.metrics import (
    STREAM_EXCHANGED_ITEMS,
    STREAM_FEATURES_PUSHED,
    STREAM_RUN_BALANCED,
    STREAM_RUN_EVENTS,
)

#: What reaches a topic sink: (the producing process, a batch of records).
TopicBatch = tuple[int, list[TopicItem]]


def written_after(log: EventLog, topic: str, offsets: dict[int, int]) -> Iterator[bytes]:
    """The values written to ``topic`` from ``offsets`` (per partition; 0 if absent) to its end.

    Reads the local log by offset, and Kafka with a consumer of its own up to partition EOF.
    """
    read = getattr(log, "read", None)
    if read is not None:  # the local log
        for partition, end in log.end_offsets(topic).items():
            offset = offsets.get(partition, 0)
            while offset < end:
                batch = read(topic, partition, offset, 10_000)
                if not batch:
                    break
                yield from (rec.value for rec in batch)
                offset = batch[-1].offset + 1
        return
    yield from _kafka_values_after(log, topic, offsets)


def _kafka_values_after(log: EventLog, topic: str, offsets: dict[int, int]) -> Iterator[bytes]:
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    config = log.config  # type: ignore[attr-defined]  # KafkaEventLog
    partitions = log.topic_partitions(topic)  # type: ignore[attr-defined]
    consumer = Consumer(
        {
            "bootstrap.servers": config.bootstrap_servers, "client.id": config.client_id,
            "group.id": "flywheel-stream-sink-replay", "enable.auto.commit": False,
            "enable.partition.eof": True, "auto.offset.reset": "earliest", "log.connection.close": False,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, max(offsets.get(p, 0), 0)) for p in range(partitions)])
        open_partitions = set(range(partitions))
        deadline = time.monotonic() + 120
        while open_partitions:
            if time.monotonic() > deadline:
                raise RuntimeError(f"reading back {topic!r} after a restart: no end of partitions {open_partitions}")
            for msg in consumer.consume(10_000, 5.0):
                err = msg.error()
                if err is None:
                    yield msg.value() or b""
                elif err.code() == KafkaError._PARTITION_EOF:
                    open_partitions.discard(msg.partition())
                else:
                    raise RuntimeError(f"reading back {topic!r} after a restart: {err}")
    finally:
        consumer.close()


#: A topic sink's resume state: (end offset per partition, source coordinates written but not yet replayed).
TopicSinkState = tuple[dict[int, int], list[tuple[str, int, int]]]


class _TopicPartition(StatefulSinkPartition[TopicBatch, TopicSinkState]):
    def __init__(self, log: EventLog, topic: str, resume: TopicSinkState | None) -> None:
        self._log = log
        self._topic = topic
        log.create_topic(topic)
        self._producer = log.producer(topic)
        offsets, pending = resume if resume is not None else ({}, [])
        self._written: set[tuple[str, int, int]] = set(pending)
        for value in written_after(log, topic, offsets):  # no snapshot yet: since the start
            coords = coordinates_of(value)
            if coords is not None:
                self._written.add(coords)
        self._pid = os.getpid()

    def write_batch(self, values: list[TopicBatch]) -> None:
        messages = []
        written, pid = self._written, self._pid
        crossed = 0
        for sender, items in values:
            if sender != pid:
                crossed += len(items)
            for key, value, coords in items:
                if written and coords in written:
                    written.discard(coords)
                    continue
                messages.append((key, value, None))
        if crossed:
            STREAM_EXCHANGED_ITEMS.labels(step=self._topic).inc(crossed)
        if messages:
            self._producer.send_many(messages)
            self._producer.flush()

    def snapshot(self) -> TopicSinkState:
        # the records still awaited from the replay lie before these offsets: keep them too
        return self._log.end_offsets(self._topic), sorted(self._written)

    def close(self) -> None:
        self._producer.close()
        self._log.close()


class TopicSink(FixedPartitionedSink[TopicBatch, TopicSinkState]):
    """Writes records to one topic of the event log, once each.

    The whole topic is one sink partition, so a single worker writes it (the local log allows one
    writer per topic). Items must be keyed ``"all"``; each is a batch of records.

    Args:
        open_log: Opens the event log (called on the worker that writes).
        topic: The topic written.
    """

    def __init__(self, open_log: Callable[[], EventLog], topic: str) -> None:
        self._open_log = open_log
        self._topic = topic

    def list_parts(self) -> list[str]:
        return ["all"]

    def build_part(self, step_id: str, for_part: str, resume_state: TopicSinkState | None) -> _TopicPartition:
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
        for report in items:
            totals, run = Counts.from_dict(report["totals"]), Counts.from_dict(report["run"])
            self._path.parent.mkdir(parents=True, exist_ok=True)
            document = {
                **totals.to_dict(), "summary": describe(totals), "this_run": run.to_dict(),
                "run_summary": describe_run(run, totals),
            }
            self._path.write_text(json.dumps(document, indent=2))
            for outcome, value in (
                ("in", totals.received), ("processed", totals.processed), ("dlq", totals.dlq_total),
                ("late", totals.late), ("duplicates", totals.duplicates),
            ):
                STREAM_RUN_EVENTS.labels(outcome=outcome).set(value)
            STREAM_RUN_BALANCED.set(1 if totals.balanced else 0)


class ReportSink(DynamicSink[dict[str, Any]]):
    """Writes the reconciliation as JSON and as metrics: the totals since the first run (the
    top-level counts), and under ``this_run`` what this run read."""

    def __init__(self, path: Path) -> None:
        self._path = Path(path)

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _ReportPartition:
        return _ReportPartition(self._path)
