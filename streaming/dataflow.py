"""The streaming features dataflow: events topic -> DLQ / late topic / features, exactly once.

::

    events (local log or Kafka), one source partition per topic partition, which also runs the
    per-partition step (validate, dedup, sessionize, fold users; state snapshotted with the offset)
      |- dlq batches  -> events.dlq       |- late batches -> events.late
      |- user rows -> features (sinks of the same worker: nothing crosses workers)
      |- per-title updates, one batch per shard -> key by shard -> "content" -> content rows -> features
      '- counts at the end -> "reconcile" -> report

Each per-title update carries its source offset and a shard skips what it already folded, so a
shard restored from a snapshot newer than its partitions' offsets counts a replay once.

Only the per-title batches and the (rare) dead letters and late events cross workers, as
built-in tuples and lists, a few per source batch (see :mod:`streaming.partitions`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink

from flywheel.config.models import FlywheelConfig
from flywheel.config.streaming import StreamingConfig
from flywheel.events.log import EventLog, Record, open_event_log
from flywheel.events.validation import EventValidator, ValidationRules
from flywheel.stream.features import FeatureContext
from flywheel.stream.processor import (
    ContentShardState,
    StreamRules,
    emit_contents,
    process_contents,
    restore_shard,
    snapshot_shard,
)
from flywheel.stream.reconcile import Counts, merge_counts
from monitoring import metrics
from streaming.partitions import CONTENT_VIEW, USER_VIEW, Item, PartitionOptions, ProcessingSource, next_emit
from streaming.sinks import FeatureTableSink, ReportSink, TopicSink
from streaming.sources import LocalLogSource, kafka_source, record_from_kafka

__all__ = ["CONTENT_VIEW", "USER_VIEW", "StreamSettings", "build_flow", "events_source", "flow_from_env"]


@dataclass(frozen=True)
class StreamSettings:
    """Everything the dataflow is built from (parsed at the entry point and passed down)."""

    config: FlywheelConfig
    streaming: StreamingConfig
    context: FeatureContext
    until_end: bool = True
    """Stop at the end of the topic as it was at the start (a finite run); else follow it."""
    as_of_end_ms: int | None = None
    """Stamp the rows emitted at the end of a finite run with this time (e.g. the end of the
    simulated day); by default each row is as of just after its entity's newest event."""
    feature_sinks: tuple[Sink[Any], ...] = field(default_factory=tuple)
    """Extra sinks of the (view, row) feature stream, e.g. the Feast push."""
    source: FixedPartitionedSource[Record, Any] | None = None
    """Override of the events source (benchmarks): a partitioned source of log records; by
    default the configured event log."""

    @property
    def rules(self) -> StreamRules:
        """The user-side rules from the streaming config."""
        return StreamRules(
            session_gap_ms=self.streaming.session_gap_ms,
            allowed_lateness_ms=self.streaming.allowed_lateness_ms,
            dedup_horizon_ms=self.streaming.dedup_horizon_ms,
        )


class ContentLogic(StatefulBatchLogic[Item, Item, bytes]):
    """Bytewax wrapper of :func:`flywheel.stream.processor.process_contents` for one shard."""

    def __init__(self, state: ContentShardState, settings: StreamSettings) -> None:
        self.state = state
        self._settings = settings
        self._emit_at = next_emit(settings.streaming.emit_interval_seconds)
        self._pid = os.getpid()

    def on_batch(self, values: list[Item]) -> tuple[list[Item], bool]:
        started = time.perf_counter()
        ctx, state, pid = self._settings.context, self.state, self._pid
        crossed = replayed = 0
        for _, _, sender, partition, updates in values:
            replayed += process_contents(state, updates, ctx, partition=partition)
            if sender != pid:
                crossed += len(updates)
        if crossed:
            metrics.STREAM_EXCHANGED_ITEMS.labels(step="content").inc(crossed)
        if replayed:
            metrics.STREAM_REPLAYED_SKIPPED.labels(step="content").inc(replayed)
        metrics.STREAM_BATCH_SECONDS.labels(step="content").observe(time.perf_counter() - started)
        return [], False

    def on_notify(self) -> tuple[list[Item], bool]:
        self._emit_at = next_emit(self._settings.streaming.emit_interval_seconds)
        return [("rows", CONTENT_VIEW, emit_contents(self.state, self._settings.context))], False

    def on_eof(self) -> tuple[list[Item], bool]:
        rows = emit_contents(self.state, self._settings.context, everyone=True, as_of_ms=self._settings.as_of_end_ms)
        return [("rows", CONTENT_VIEW, rows)], False

    def notify_at(self) -> datetime | None:
        return self._emit_at if self.state.dirty else None

    def snapshot(self) -> bytes:
        # serialized now: Bytewax wants an immutable snapshot, and serializes it later
        return snapshot_shard(self.state)


def _log_opener(settings: StreamSettings) -> Callable[[], EventLog]:
    log_config = settings.config.event_log
    return lambda: open_event_log(log_config)


def events_source(settings: StreamSettings, validator: EventValidator) -> ProcessingSource:
    """The events topic of the configured log, as a Bytewax source that also runs the per-partition step."""
    options = PartitionOptions(
        validator=validator, rules=settings.rules, context=settings.context,
        content_shards=settings.streaming.content_shards,
        emit_interval_s=settings.streaming.emit_interval_seconds, as_of_end_ms=settings.as_of_end_ms,
    )
    if settings.source is not None:
        return ProcessingSource(settings.source, None, options)
    log_config = settings.config.event_log
    topic = log_config.topics.events
    if log_config.backend == "kafka":
        inner = kafka_source(
            log_config.kafka.bootstrap_servers, topic, batch_size=settings.streaming.batch_size,
            tail=not settings.until_end, client_id=log_config.kafka.client_id,
        )
        return ProcessingSource(inner, record_from_kafka, options)
    local = LocalLogSource(
        log_config.local.path, topic, batch_size=settings.streaming.batch_size, until_end=settings.until_end
    )
    return ProcessingSource(local, None, options)


def _merge_reports(parts: dict[str, tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    totals = merge_counts(Counts.from_dict(total) for total, _ in parts.values())
    run = merge_counts(Counts.from_dict(this_run) for _, this_run in parts.values())
    return {"totals": totals.to_dict(), "run": run.to_dict()}


def build_flow(settings: StreamSettings, flow_id: str = "flywheel_stream") -> Dataflow:
    """The streaming features dataflow.

    Args:
        settings: Configuration, feature context and run options.
        flow_id: The dataflow id (recovery data is kept per id).
    """
    topics = settings.config.event_log.topics
    validator = EventValidator(
        rules=ValidationRules(
            max_clock_skew_ms=round(settings.config.validation.max_clock_skew_seconds * 1000),
            max_watch_seconds=settings.config.validation.max_watch_seconds,
        )
    )
    flow = Dataflow(flow_id)
    items = op.input("events", flow, events_source(settings, validator))
    kinds = op.branch("is_content", items, lambda item: item[0] == "content")
    content_rows = op.key_rm(
        "content_out",
        op.stateful_batch(
            "content",
            op.key_on("by_shard", kinds.trues, lambda item: item[1]),
            lambda resume: ContentLogic(ContentShardState() if resume is None else restore_shard(resume), settings),
        ),
    )
    rest = op.merge("all_out", kinds.falses, content_rows)
    dlq = op.filter_map("dlq", rest, lambda item: ("all", item[1:]) if item[0] == "dlq" else None)
    late = op.filter_map("late", rest, lambda item: ("all", item[1:]) if item[0] == "late" else None)
    rows = op.flat_map("rows", rest, lambda item: [(item[1], row) for row in item[2]] if item[0] == "rows" else [])
    counts = op.filter_map(
        "counts", rest, lambda item: ("all", {item[1]: (item[2], item[3])}) if item[0] == "counts" else None
    )
    op.output("dlq_out", dlq, TopicSink(_log_opener(settings), topics.dlq))
    op.output("late_out", late, TopicSink(_log_opener(settings), topics.late))
    assert settings.streaming.features_table is not None and settings.streaming.report_path is not None
    op.output("features_out", rows, FeatureTableSink(settings.streaming.features_table))
    for i, sink in enumerate(settings.feature_sinks):
        op.output(f"features_out_{i}", rows, sink)
    # by source partition, the latest wins: the reduction's state survives restarts, and a partition
    # that had reached its end before a crash reports again at the end of the next run
    total = op.reduce_final("reconcile", counts, lambda a, b: {**a, **b})
    summary = op.map("summary", total, lambda kv: _merge_reports(kv[1]))
    op.output("report_out", summary, ReportSink(settings.streaming.report_path))
    return flow


def flow_from_env() -> Dataflow:
    """The dataflow for ``python -m bytewax.run "streaming.dataflow:flow_from_env()"``.

    Reads the configuration named by ``FLYWHEEL_CONFIG`` (or the embedded defaults).
    """
    from flywheel.config import load_config
    from streaming.settings import settings_from_config

    path = os.environ.get("FLYWHEEL_CONFIG")
    return build_flow(settings_from_config(load_config(Path(path) if path else None)))
