"""The streaming features dataflow: events topic -> DLQ / late topic / features, exactly once.

::

    events (local log or Kafka), one source partition per topic partition
      -> key by partition -> "partition" (stateful: validate, dedup, sessionize, fold users)
           |- dlq  -> events.dlq       |- late -> events.late      |- user rows -> features
           |- per-title updates -> key by shard -> "content" (stateful) -> content rows -> features
           '- counts at the end -> "reconcile" -> report
"""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink

from flywheel.config.models import FlywheelConfig
from flywheel.config.streaming import StreamingConfig
from flywheel.events.log import EventLog, Record, open_event_log
from flywheel.events.validation import EventValidator, ValidationRules
from flywheel.stream.features import FeatureContext
from flywheel.stream.processor import (
    ContentShardState,
    Output,
    PartitionState,
    StreamRules,
    emit_contents,
    emit_users,
    process_content,
    process_record,
)
from flywheel.stream.reconcile import Counts, merge_counts
from monitoring import metrics
from streaming.sinks import FeatureTableSink, ReportSink, TopicSink
from streaming.sources import LocalLogSource, kafka_source, record_from_kafka

USER_VIEW = "user_stream_features"
CONTENT_VIEW = "content_stream_features"


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
    source: Source[Any] | None = None
    """Override of the events source (benchmarks); by default the configured event log."""

    @property
    def rules(self) -> StreamRules:
        """The user-side rules from the streaming config."""
        return StreamRules(
            session_gap_ms=self.streaming.session_gap_ms,
            allowed_lateness_ms=self.streaming.allowed_lateness_ms,
            dedup_horizon_ms=self.streaming.dedup_horizon_ms,
        )


def _next_emit(interval_s: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=interval_s)


class PartitionLogic(StatefulBatchLogic[Record, Output, PartitionState]):
    """Bytewax wrapper of :func:`flywheel.stream.processor.process_record` for one partition."""

    def __init__(self, state: PartitionState, settings: StreamSettings, validator: EventValidator) -> None:
        self.state = state
        self._settings = settings
        self._validator = validator
        self._rules = settings.rules
        self._shards = settings.streaming.content_shards
        self._emit_at = _next_emit(settings.streaming.emit_interval_seconds)

    def on_batch(self, values: list[Record]) -> tuple[list[Output], bool]:
        started = time.perf_counter()
        before = _snapshot_counts(self.state.counts)
        out: list[Output] = []
        produced: list[Output] = []
        by_shard: dict[str, list[Output]] = {}
        ctx, rules, validator, state = self._settings.context, self._rules, self._validator, self.state
        for record in values:
            process_record(state, record, validator=validator, rules=rules, ctx=ctx, out=out)
        for item in out:
            if item[0] == "content":
                shard = f"c{zlib.crc32(item[1].encode()) % self._shards}"
                by_shard.setdefault(shard, []).append(item)
            else:
                produced.append(item)
        produced.extend(("content_batch", shard, items) for shard, items in by_shard.items())
        _publish_counts(before, self.state.counts)
        metrics.STREAM_BATCH_SECONDS.labels(step="partition").observe(time.perf_counter() - started)
        return produced, False

    def on_notify(self) -> tuple[list[Output], bool]:
        self._emit_at = _next_emit(self._settings.streaming.emit_interval_seconds)
        rows = emit_users(self.state, self._settings.context)
        return [("row", USER_VIEW, row) for row in rows], False

    def on_eof(self) -> tuple[list[Output], bool]:
        rows = emit_users(self.state, self._settings.context, everyone=True, as_of_ms=self._settings.as_of_end_ms)
        out: list[Output] = [("row", USER_VIEW, row) for row in rows]
        out.append(("counts", self.state.counts.to_dict()))
        return out, False

    def notify_at(self) -> datetime | None:
        return self._emit_at if self.state.dirty else None

    def snapshot(self) -> PartitionState:
        return self.state


class ContentLogic(StatefulBatchLogic[Output, Output, ContentShardState]):
    """Bytewax wrapper of :func:`flywheel.stream.processor.process_content` for one shard."""

    def __init__(self, state: ContentShardState, settings: StreamSettings) -> None:
        self.state = state
        self._settings = settings
        self._emit_at = _next_emit(settings.streaming.emit_interval_seconds)

    def on_batch(self, values: list[Output]) -> tuple[list[Output], bool]:
        started = time.perf_counter()
        ctx, state = self._settings.context, self.state
        for batch in values:
            for item in batch[2]:
                process_content(state, item, ctx)
        metrics.STREAM_BATCH_SECONDS.labels(step="content").observe(time.perf_counter() - started)
        return [], False

    def on_notify(self) -> tuple[list[Output], bool]:
        self._emit_at = _next_emit(self._settings.streaming.emit_interval_seconds)
        return [("row", CONTENT_VIEW, row) for row in emit_contents(self.state, self._settings.context)], False

    def on_eof(self) -> tuple[list[Output], bool]:
        rows = emit_contents(self.state, self._settings.context, everyone=True, as_of_ms=self._settings.as_of_end_ms)
        return [("row", CONTENT_VIEW, row) for row in rows], False

    def notify_at(self) -> datetime | None:
        return self._emit_at if self.state.dirty else None

    def snapshot(self) -> ContentShardState:
        return self.state


def _snapshot_counts(counts: Counts) -> tuple[int, int, int, int, int, dict[str, int]]:
    return (counts.received, counts.processed, counts.late, counts.duplicates, counts.late_allowed, dict(counts.dlq))


def _publish_counts(before: tuple[int, int, int, int, int, dict[str, int]], after: Counts) -> None:
    received, processed, late, duplicates, late_allowed, dlq = before
    metrics.STREAM_EVENTS_IN.inc(after.received - received)
    metrics.STREAM_EVENTS_PROCESSED.inc(after.processed - processed)
    if after.late != late:
        metrics.STREAM_EVENTS_LATE.inc(after.late - late)
    if after.duplicates != duplicates:
        metrics.STREAM_EVENTS_DUPLICATE.inc(after.duplicates - duplicates)
    if after.late_allowed != late_allowed:
        metrics.STREAM_EVENTS_LATE_ALLOWED.inc(after.late_allowed - late_allowed)
    for code, n in after.dlq.items():
        if n != dlq.get(code, 0):
            metrics.STREAM_EVENTS_DLQ.labels(code=code).inc(n - dlq.get(code, 0))


def _log_opener(settings: StreamSettings) -> Callable[[], EventLog]:
    log_config = settings.config.event_log
    return lambda: open_event_log(log_config)


def events_source(settings: StreamSettings) -> Source[Any]:
    """The events topic of the configured log, as a Bytewax source."""
    log_config = settings.config.event_log
    topic = log_config.topics.events
    if log_config.backend == "kafka":
        return kafka_source(
            log_config.kafka.bootstrap_servers, topic, batch_size=settings.streaming.batch_size,
            tail=not settings.until_end, client_id=log_config.kafka.client_id,
        )
    return LocalLogSource(
        log_config.local.path, topic, batch_size=settings.streaming.batch_size, until_end=settings.until_end
    )


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
    source = settings.source or events_source(settings)
    raw = op.input("events", flow, source)
    if settings.source is None and settings.config.event_log.backend == "kafka":
        raw = op.map("as_record", raw, record_from_kafka)
    keyed = op.key_on("by_partition", raw, lambda rec: f"p{rec.partition}")
    outputs = op.key_rm(
        "partition_out",
        op.stateful_batch(
            "partition",
            keyed,
            lambda resume: PartitionLogic(resume or PartitionState.empty(settings.rules), settings, validator),
        ),
    )
    kinds = op.branch("is_content", outputs, lambda item: item[0] == "content_batch")
    content_rows = op.key_rm(
        "content_out",
        op.stateful_batch(
            "content",
            op.key_on("by_shard", kinds.trues, lambda item: item[1]),
            lambda resume: ContentLogic(resume or ContentShardState(), settings),
        ),
    )
    rest = op.merge("all_rows", kinds.falses, content_rows)
    dlq = op.filter_map("dlq", rest, lambda item: ("all", item[1:]) if item[0] == "dlq" else None)
    late = op.filter_map("late", rest, lambda item: ("all", item[1:]) if item[0] == "late" else None)
    rows = op.filter_map("rows", rest, lambda item: (item[1], item[2]) if item[0] == "row" else None)
    counts = op.filter_map("counts", rest, lambda item: ("all", item[1]) if item[0] == "counts" else None)
    op.output("dlq_out", dlq, TopicSink(_log_opener(settings), topics.dlq))
    op.output("late_out", late, TopicSink(_log_opener(settings), topics.late))
    assert settings.streaming.features_table is not None and settings.streaming.report_path is not None
    op.output("features_out", rows, FeatureTableSink(settings.streaming.features_table))
    for i, sink in enumerate(settings.feature_sinks):
        op.output(f"features_out_{i}", rows, sink)
    total = op.reduce_final(
        "reconcile",
        op.map("count_parts", counts, lambda kv: (kv[0], [kv[1]])),
        lambda a, b: a + b,
    )
    summary = op.map("summary", total, lambda kv: merge_counts(Counts.from_dict(c) for c in kv[1]).to_dict())
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
