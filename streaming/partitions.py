"""The per-partition step, run inside the source partition that reads the partition.

Bytewax routes a keyed step by a hash of its key, whatever worker read the data, so a keyed
per-partition step sent most events to another process (pickled, twice) as soon as there were
two. Here the partition's own source partition validates, dead-letters, deduplicates,
sessionizes and folds the users (:func:`flywheel.stream.processor.process_batch`), and its
snapshot is ``(offset, pickled state)``: Bytewax stores both in the same epoch, so a restart resumes
from a consistent pair. What leaves the partition is a few built-in tuples per source batch:

* ``("content", "c<shard>", pid, partition, [update, ...])``: per-title updates of the events read
  from ``partition`` (the topic partition), one item per shard;
* ``("dlq" | "late", pid, [(key, value, (topic, partition, offset)), ...])``: for the topic sinks;
* ``("rows", view, [row, ...])``: user feature rows, written by the sinks of this same worker;
* ``("counts", partition, totals, this_run)``: at the end of a finite run, the partition's
  reconciliation (again at the end of every later run, which replaces it).

``pid`` is the producing process, so that the receiving step can count what crossed processes.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from flywheel.events.log import Record
from flywheel.events.validation import EventValidator
from flywheel.stream.features import FeatureContext
from flywheel.stream.processor import PartitionState, StreamRules, emit_users, process_batch
from flywheel.stream.reconcile import Counts, since
from monitoring import metrics

USER_VIEW = "user_stream_features"
CONTENT_VIEW = "content_stream_features"

#: What a source partition emits (see the module docstring).
Item = tuple[Any, ...]


def next_emit(interval_s: float) -> datetime:
    """When rows are next due, ``interval_s`` from now."""
    return datetime.now(UTC) + timedelta(seconds=interval_s)


@dataclass(frozen=True, kw_only=True)
class PartitionOptions:
    """What every partition step needs: the rules, the feature context, the emission settings."""

    validator: EventValidator
    rules: StreamRules
    context: FeatureContext
    content_shards: int
    emit_interval_s: float
    as_of_end_ms: int | None


class _ProcessingPartition(StatefulSourcePartition[Item, tuple[Any, bytes]]):
    def __init__(
        self,
        inner: StatefulSourcePartition[Any, Any],
        to_record: Callable[[Any], Record] | None,
        state: PartitionState,
        options: PartitionOptions,
        name: str,
    ) -> None:
        self._name = name
        self._inner = inner
        self._to_record = to_record
        self.state = state
        self._options = options
        self._run_start = Counts.from_dict(state.counts.to_dict())
        self._emit_at = next_emit(options.emit_interval_s)
        self._done = False
        self._pid = os.getpid()

    def next_batch(self) -> list[Item]:
        if self._done:
            raise StopIteration
        try:
            raw = self._inner.next_batch()
        except StopIteration:
            self._done = True
            return self._final()
        if not raw:
            return self._due_rows()
        started = time.perf_counter()
        options, state = self._options, self.state
        before = _counts_reading(state.counts)
        batch: list[Record] = list(raw) if self._to_record is None else [self._to_record(message) for message in raw]
        routed = process_batch(
            state, batch, validator=options.validator, rules=options.rules, ctx=options.context,
            shards=options.content_shards,
        )
        pid = self._pid
        partition = batch[0].partition
        out: list[Item] = [
            ("content", f"c{shard}", pid, partition, updates) for shard, updates in routed.contents.items()
        ]
        if routed.dlq:
            out.append(("dlq", pid, routed.dlq))
        if routed.late:
            out.append(("late", pid, routed.late))
        out.extend(self._due_rows())
        _publish_counts(before, state.counts)
        metrics.STREAM_BATCH_SECONDS.labels(step="partition").observe(time.perf_counter() - started)
        return out

    def _due_rows(self) -> list[Item]:
        if not self.state.dirty or datetime.now(UTC) < self._emit_at:
            return []
        self._emit_at = next_emit(self._options.emit_interval_s)
        return [("rows", USER_VIEW, emit_users(self.state, self._options.context))]

    def _final(self) -> list[Item]:
        options, counts = self._options, self.state.counts
        rows = emit_users(self.state, options.context, everyone=True, as_of_ms=options.as_of_end_ms)
        run = since(counts, self._run_start)
        return [("rows", USER_VIEW, rows), ("counts", self._name, counts.to_dict(), run.to_dict())]

    def next_awake(self) -> datetime | None:
        awake = self._inner.next_awake()
        if awake is None or not self.state.dirty:
            return awake
        return min(awake, self._emit_at)

    def snapshot(self) -> tuple[Any, bytes]:
        # pickled now: Bytewax may serialize the snapshot after the next batch has changed the state
        return (self._inner.snapshot(), pickle.dumps(self.state, protocol=pickle.HIGHEST_PROTOCOL))

    def close(self) -> None:
        self._inner.close()


class ProcessingSource(FixedPartitionedSource[Item, tuple[Any, bytes]]):
    """A partitioned source whose partitions also run the per-partition step.

    Args:
        inner: The source of the events topic (the local log, or Bytewax's Kafka source).
        to_record: Turns what ``inner`` emits into log records (None: it emits records).
        options: Rules, context and emission settings.
    """

    def __init__(
        self,
        inner: FixedPartitionedSource[Any, Any],
        to_record: Callable[[Any], Record] | None,
        options: PartitionOptions,
    ) -> None:
        self._inner = inner
        self._to_record = to_record
        self._options = options

    def list_parts(self) -> list[str]:
        return self._inner.list_parts()

    def build_part(
        self, step_id: str, for_part: str, resume_state: tuple[Any, bytes] | None
    ) -> _ProcessingPartition:
        if resume_state is None:
            inner_state, state = None, PartitionState.empty(self._options.rules)
        elif isinstance(resume_state, tuple) and len(resume_state) == 2 and isinstance(resume_state[1], bytes):
            inner_state, state = resume_state[0], pickle.loads(resume_state[1])  # noqa: S301 - our own snapshot
        else:
            message = (
                f"the recovery data of source partition {for_part!r} was written by an older version of the "
                "stream (an offset without the partition's state): start afresh (`flywheel stream --fresh`)"
            )
            print(f"error: {message}", file=sys.stderr)  # a cluster's panic can hide the exception's text
            raise RuntimeError(message)
        inner = self._inner.build_part(step_id, for_part, inner_state)
        return _ProcessingPartition(inner, self._to_record, state, self._options, for_part)


def _counts_reading(counts: Counts) -> tuple[int, int, int, int, int, dict[str, int]]:
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
