"""The per-partition step of the stream: validate, dedup, sessionize, fold; engine-free.

A partition of the events topic holds all the events of its users (the topic is keyed by
user_id), so one :class:`PartitionState` per source partition keeps everything the user side of
the stream needs, and its outcome depends only on the order of the partition, which the log fixes.
That makes a replay after a crash produce the same state and the same records as the first pass.
"""

from __future__ import annotations

import pickle
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flywheel.events.log import Record
from flywheel.events.validation import EventValidator
from flywheel.features import formulas as f
from flywheel.stream import dedup, records, sessions
from flywheel.stream.features import (
    CONTENT_FIELDS,
    ContentAggregate,
    FeatureContext,
    UserAggregate,
    content_features,
    fold_content_event,
    fold_user_event,
    fold_user_sessions,
    user_features,
)
from flywheel.stream.reconcile import Counts

#: What a partition step emits. ("dlq" | "late", key, value, (topic, partition, offset)) for the
#: sinks, and ("content", content_id, ts_ms, event_type, rating, offset) for the per-title step.
Output = tuple[Any, ...]
#: A record for the DLQ or late topic: (key, value, (topic, partition, offset)); built-in types only.
TopicItem = tuple[bytes | None, bytes, tuple[str, int, int]]
#: One accepted event about a title: (content_id, ts_ms, event_type, rating, offset in its source
#: partition); built-in types only.
ContentUpdate = tuple[str, int, str, Any, int]


@dataclass(frozen=True)
class StreamRules:
    """The rules of the user side of the stream."""

    session_gap_ms: int = 30 * 60_000
    allowed_lateness_ms: int = 10 * 60_000
    dedup_horizon_ms: int = 60 * 60_000


@dataclass
class PartitionState:
    """Everything one source partition's users need, snapshotted with the partition's offset."""

    dedup: dedup.DedupState
    users: dict[str, UserAggregate] = field(default_factory=dict)
    counts: Counts = field(default_factory=Counts)
    dirty: set[str] = field(default_factory=set)
    """Users whose features changed since they were last emitted."""

    @classmethod
    def empty(cls, rules: StreamRules) -> PartitionState:
        """A new partition state."""
        return cls(dedup=dedup.DedupState(horizon_ms=rules.dedup_horizon_ms))


def process_record(
    state: PartitionState,
    record: Record,
    *,
    validator: EventValidator,
    rules: StreamRules,
    ctx: FeatureContext,
    out: list[Output],
) -> None:
    """Route one record read from the events topic; append what it emits to ``out``.

    The clock of the clock-skew rule is the record's log timestamp (when the log received it),
    so a replay validates exactly as the first pass did.
    """
    item = _route(state, record, validator, rules, ctx)
    if item is not None:
        out.append(item)


def _route(
    state: PartitionState, record: Record, validator: EventValidator, rules: StreamRules, ctx: FeatureContext
) -> Output | None:
    """:func:`process_record`'s work: what the record emits, if anything (positional: it runs per event)."""
    counts = state.counts
    counts.received += 1
    event = validator.accept_bytes(record.value, now_ms=record.timestamp_ms)
    if event is None:
        result = validator.validate_bytes(record.value, now_ms=record.timestamp_ms)
        if result.event is None:
            source = records.Coordinates(record.topic, record.partition, record.offset)
            letter = records.dead_letter(record.value, result.rejections, source, record.timestamp_ms)
            counts.add_dlq(result.rejections[0].code)
            return ("dlq", record.key, records.encode(letter), (record.topic, record.partition, record.offset))
        event = validator.as_struct(result.event)  # accepted all the same (never seen: the paths agree)
    ts = event.timestamp_ms
    if dedup.observe(state.dedup, event.event_id, ts):
        counts.duplicates += 1
        return None
    user_id = event.user_id
    agg = state.users.get(user_id)
    if agg is None:
        agg = state.users[user_id] = UserAggregate()
    lateness, closed = sessions.observe(
        agg.sessions, ts, gap_ms=rules.session_gap_ms, allowed_lateness_ms=rules.allowed_lateness_ms
    )
    if lateness is sessions.Lateness.TOO_LATE:  # the user's sessions are unchanged: the watermark is as it was
        watermark = agg.sessions.watermark_ms(rules.allowed_lateness_ms)
        assert watermark is not None
        source = records.Coordinates(record.topic, record.partition, record.offset)
        late = records.late_event(
            record.value,
            event_id=event.event_id,
            user_id=user_id,
            ts_ms=ts,
            watermark_ms=watermark,
            source=source,
            received_ms=record.timestamp_ms,
        )
        counts.late += 1
        return ("late", record.key, records.encode(late), (record.topic, record.partition, record.offset))
    counts.processed += 1
    if lateness is sessions.Lateness.LATE_ALLOWED:
        counts.late_allowed += 1
    fold_user_event(agg, event, ctx)
    if closed:
        fold_user_sessions(agg, closed)
    state.dirty.add(user_id)
    content_id = event.content_id
    if content_id:
        return ("content", content_id, ts, event.event_type, getattr(event, "rating", None), record.offset)
    return None


def shard_of(content_id: str, shards: int) -> int:
    """The shard of a title's state: crc32(content_id) mod ``shards`` (stable across runs and processes)."""
    return zlib.crc32(content_id.encode()) % shards


_SHARD_CACHES: dict[int, dict[str, int]] = {}


def _shards(shards: int) -> dict[str, int]:
    """The known titles' shards for ``shards`` shards (ids repeat: a lookup is cheaper than a crc32)."""
    cache = _SHARD_CACHES.setdefault(shards, {})
    if len(cache) > 1_000_000:  # a bound on memory for catalogs beyond any we know
        cache.clear()
    return cache


@dataclass
class RoutedBatch:
    """What one batch of a partition sends on, grouped so that few, large items cross workers."""

    dlq: list[TopicItem] = field(default_factory=list)
    late: list[TopicItem] = field(default_factory=list)
    contents: dict[int, list[ContentUpdate]] = field(default_factory=dict)
    """Per-title updates by shard (see :func:`shard_of`)."""


def process_batch(
    state: PartitionState,
    batch: Iterable[Record],
    *,
    validator: EventValidator,
    rules: StreamRules,
    ctx: FeatureContext,
    shards: int,
) -> RoutedBatch:
    """Process a batch of one partition's records in order (see :func:`process_record`).

    Args:
        state: The partition's state (updated in place).
        batch: Records of the partition, in offset order.
        validator: The event validator.
        rules: Sessions, lateness and dedup rules.
        ctx: The feature context.
        shards: Number of shards of the per-title state.

    Returns:
        The dead letters, late events and per-title updates by shard, in the order produced.
    """
    routed = RoutedBatch()
    contents = routed.contents
    cache = _shards(shards)
    for record in batch:
        item = _route(state, record, validator, rules, ctx)
        if item is None:
            continue
        kind = item[0]
        if kind == "content":
            content_id = item[1]
            shard = cache.get(content_id)
            if shard is None:
                shard = cache[content_id] = shard_of(content_id, shards)
            group = contents.get(shard)
            if group is None:
                contents[shard] = [item[1:]]
            else:
                group.append(item[1:])
        elif kind == "dlq":
            routed.dlq.append(item[1:])
        else:
            routed.late.append(item[1:])
    return routed


def emit_users(
    state: PartitionState, ctx: FeatureContext, *, everyone: bool = False, as_of_ms: int | None = None
) -> list[dict[str, Any]]:
    """Feature rows of the users that changed since the last emission (or of every user).

    Args:
        state: The partition state (its dirty set is cleared).
        ctx: The feature context.
        everyone: Emit every user, not only those that changed.
        as_of_ms: Stamp every row with this time; by default a user's row is as of just after
            the user's newest event.
    """
    names = sorted(state.users) if everyone else sorted(state.dirty)
    state.dirty.clear()
    rows = []
    for user_id in names:
        agg = state.users[user_id]
        newest = agg.sessions.max_ts_ms
        if newest is None:
            continue
        rows.append(user_features(user_id, agg, as_of_ms if as_of_ms is not None else newest + 1, ctx))
    return rows


@dataclass
class ContentShardState:
    """The per-title state of the titles whose id hashes to one shard."""

    contents: dict[str, ContentAggregate] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)
    applied: dict[int, int] = field(default_factory=dict)
    """Per source partition, the offset of the newest update folded in. After a crash, Bytewax can
    restore a shard from a snapshot that already holds updates its source partitions replay (a
    shard's snapshot taken in an epoch the cluster had not finished): those are skipped."""


def snapshot_shard(state: ContentShardState) -> bytes:
    """A shard's state as the bytes Bytewax stores (see :func:`restore_shard`)."""
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def restore_shard(snapshot: bytes) -> ContentShardState:
    """A shard's state from :func:`snapshot_shard`'s bytes, also from an earlier release's layout
    (no offsets noted; day buckets as ContentState objects rather than summed lists)."""
    state: ContentShardState = pickle.loads(snapshot)  # noqa: S301 - our own snapshot
    state.__dict__.setdefault("applied", {})
    for agg in state.contents.values():
        for bucket, value in agg.buckets.items():
            if isinstance(value, f.ContentState):
                agg.buckets[bucket] = [getattr(value, name) for name in CONTENT_FIELDS]
    return state


def process_content(state: ContentShardState, update: ContentUpdate, ctx: FeatureContext, *, partition: int) -> int:
    """Fold one (content_id, ts_ms, event_type, rating, offset) update read from ``partition``."""
    return process_contents(state, (update,), ctx, partition=partition)


def process_contents(
    state: ContentShardState, updates: Sequence[ContentUpdate], ctx: FeatureContext, *, partition: int
) -> int:
    """Fold updates read from one source partition, in offset order, into their titles' states.

    Updates at or before the newest offset already folded from ``partition`` are a replay and
    are skipped, so each event counts once however the shard's snapshot and the partition's
    offset were restored.

    Returns:
        How many updates were skipped as already folded.
    """
    if not updates:
        return 0
    applied = state.applied.get(partition, -1)
    skipped = 0
    if updates[0][4] <= applied:
        fresh = [update for update in updates if update[4] > applied]
        skipped = len(updates) - len(fresh)
        if not fresh:
            return skipped
        updates = fresh
    contents, dirty = state.contents, state.dirty
    for content_id, ts, event_type, rating, _ in updates:
        agg = contents.get(content_id)
        if agg is None:
            agg = contents[content_id] = ContentAggregate()
        fold_content_event(agg, ts, event_type, rating, ctx)
        dirty.add(content_id)
    state.applied[partition] = updates[-1][4]
    return skipped


def emit_contents(
    state: ContentShardState, ctx: FeatureContext, *, everyone: bool = False, as_of_ms: int | None = None
) -> list[dict[str, Any]]:
    """Feature rows of the titles that changed since the last emission (or of every title)."""
    names = sorted(state.contents) if everyone else sorted(state.dirty)
    state.dirty.clear()
    rows = []
    for content_id in names:
        agg = state.contents[content_id]
        if agg.max_ts_ms is None:
            continue
        as_of = as_of_ms if as_of_ms is not None else agg.max_ts_ms + 1
        rows.append(content_features(content_id, agg, as_of, ctx))
    return rows
