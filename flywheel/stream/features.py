"""Per-entity feature state of the stream, kept with the batch job's own pure functions.

Each user and title keeps one :mod:`flywheel.features.formulas` state per day bucket, folded
with ``*_event_delta`` and ``merge_*``, and finalized over the trailing windows with
``finalize_*`` exactly as :mod:`flywheel.features.aggregates` does for the batch job: a row
as of ``T`` sees the events stamped before ``T``. The stream adds real-time counters the batch
job has no use for (plays and watch time in the last hour), as exact sliding windows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import msgspec

from flywheel.events.validation import DecodedEvent
from flywheel.features import formulas as f
from flywheel.features.sessions import Session
from flywheel.stream.sessions import UserSessions
from flywheel.stream.windows import SlidingSum

#: Features only the stream computes, with their Feast types.
REALTIME_USER_FEATURES: tuple[tuple[str, str], ...] = (
    ("user_plays_1h", "int"),
    ("user_watch_hours_1h", "float"),
)
REALTIME_CONTENT_FEATURES: tuple[tuple[str, str], ...] = (
    ("content_plays_1h", "int"),
    ("content_impressions_1h", "int"),
)


@dataclass(frozen=True)
class FeatureContext:
    """What the formulas need besides the events: windows, catalog, users, vocabulary."""

    vocab: f.GenreVocabulary
    catalog: Mapping[str, f.ContentMeta] = field(default_factory=dict)
    users: Mapping[str, f.UserProfile] = field(default_factory=dict)
    short_days: int = 7
    long_days: int = 30
    skip_threshold_seconds: float = 30.0
    realtime_window_ms: int = f.HOUR_MS
    allowed_lateness_ms: int = 10 * 60_000

    @property
    def no_user_change(self) -> f.UserState:
        """The delta of an event that changes no user aggregate (merging it is a no-op)."""
        cached = self.__dict__.get("_no_user_change")
        if cached is None:
            cached = f.UserState(genre_watch_seconds=(0.0,) * self.vocab.size)
            object.__setattr__(self, "_no_user_change", cached)
        return cached


@dataclass
class UserAggregate:
    """One user's state: day buckets, sessions still open, recent plays and watch time."""

    buckets: dict[int, f.UserState] = field(default_factory=dict)
    sessions: UserSessions = field(default_factory=UserSessions)
    recent_plays: SlidingSum = field(default_factory=SlidingSum)
    recent_watch: SlidingSum = field(default_factory=SlidingSum)


#: The fields of a :class:`~flywheel.features.formulas.ContentState`, in order: a title's day bucket
#: is a list of them, summed in place (every event about a title comes here: a new state per event
#: cost more than the rest of its fold).
CONTENT_FIELDS: tuple[str, ...] = tuple(name.name for name in fields(f.ContentState))


@dataclass
class ContentAggregate:
    """One title's state: day buckets and recent plays and impressions."""

    buckets: dict[int, list[Any]] = field(default_factory=dict)
    """Per day, the values of a ContentState in :data:`CONTENT_FIELDS` order."""
    max_ts_ms: int | None = None
    recent_plays: SlidingSum = field(default_factory=SlidingSum)
    recent_impressions: SlidingSum = field(default_factory=SlidingSum)


def _oldest_kept_bucket(max_ts_ms: int, ctx: FeatureContext) -> int:
    return f.bucket_of(max_ts_ms - ctx.allowed_lateness_ms) - ctx.long_days


def fold_user_event(agg: UserAggregate, event: DecodedEvent, ctx: FeatureContext) -> None:
    """Add one accepted event (a Struct of :meth:`EventValidator.accept_bytes`) to its user's state
    (sessions are folded by the caller)."""
    ts = event.timestamp_ms
    bucket = f.bucket_of(ts)
    kind = event.event_type
    if kind in f.USER_STATE_EVENTS:
        fields = msgspec.to_builtins(event)  # the formulas read mappings, as the batch job's rows are
        delta = f.user_event_delta(fields, ctx.catalog, ctx.vocab, skip_threshold_seconds=ctx.skip_threshold_seconds)
        current = agg.buckets.get(bucket)
        agg.buckets[bucket] = delta if current is None else f.merge_user(current, delta)
    elif bucket not in agg.buckets:  # most events (impressions) add nothing: no delta, no merge
        agg.buckets[bucket] = ctx.no_user_change
    if kind == f.PLAY_START:
        agg.recent_plays.add(ts)
    elif kind in f.WATCH_EVENTS:
        agg.recent_watch.add(ts, float(event.watch_seconds or 0.0))
    newest = agg.sessions.max_ts_ms
    if newest is not None:
        keep_from = newest - ctx.allowed_lateness_ms - ctx.realtime_window_ms
        plays, watch = agg.recent_plays, agg.recent_watch
        if plays.stamps and plays.stamps[0][0] < keep_from:  # prune() only when it has work (every event comes here)
            plays.prune(keep_from)
        if watch.stamps and watch.stamps[0][0] < keep_from:
            watch.prune(keep_from)
        if len(agg.buckets) > ctx.long_days + 2:
            oldest = _oldest_kept_bucket(newest, ctx)
            for old in [b for b in agg.buckets if b < oldest]:
                del agg.buckets[old]


def fold_user_sessions(agg: UserAggregate, closed: list[Session]) -> None:
    """Add sessions that became final, each in the bucket of its last event."""
    for session in closed:
        bucket = f.bucket_of(session.end_ms)
        delta = f.session_delta(session.start_ms, session.end_ms)
        current = agg.buckets.get(bucket)
        agg.buckets[bucket] = delta if current is None else f.merge_user(current, delta)


def _window(buckets: Mapping[int, Any], last: int, days: int) -> list[Any]:
    return [buckets[b] for b in range(last - days + 1, last + 1) if b in buckets]


def user_features(user_id: str, agg: UserAggregate, as_of_ms: int, ctx: FeatureContext) -> dict[str, Any]:
    """The user's feature row as of ``as_of_ms`` (events stamped before it).

    Open sessions count as they stand, as the batch job counts the last session before its cutoff.
    """
    buckets = dict(agg.buckets)
    for session in agg.sessions.open:
        if session.end_ms < as_of_ms:
            bucket = f.bucket_of(session.end_ms)
            delta = f.session_delta(session.start_ms, session.end_ms)
            buckets[bucket] = f.merge_user(buckets[bucket], delta) if bucket in buckets else delta
    last = f.bucket_of(as_of_ms - 1)
    short = f.merge_all_users(_window(buckets, last, ctx.short_days))
    long = f.merge_all_users(_window(buckets, last, ctx.long_days))
    values = f.finalize_user(short, long, ctx.users.get(user_id), as_of_ms, ctx.vocab)
    values["user_plays_1h"] = int(agg.recent_plays.total(as_of_ms, ctx.realtime_window_ms))
    values["user_watch_hours_1h"] = agg.recent_watch.total(as_of_ms, ctx.realtime_window_ms) / 3600.0
    return {"user_id": user_id, "event_timestamp": as_of_ms, **values}


def fold_content_event(
    agg: ContentAggregate, ts_ms: int, event_type: str, rating: float | None, ctx: FeatureContext
) -> None:
    """Add one accepted event about a title to the title's state."""
    bucket = ts_ms // f.DAY_MS  # f.bucket_of, inlined: every event about a title comes here
    delta = _CONTENT_DELTAS.get((event_type, rating)) or _content_delta(event_type, rating)
    current = agg.buckets.get(bucket)
    if current is None:
        current = agg.buckets[bucket] = [0] * len(CONTENT_FIELDS)
    for i, value in delta:  # f.merge_content, in place
        current[i] += value
    if agg.max_ts_ms is None or ts_ms > agg.max_ts_ms:
        agg.max_ts_ms = ts_ms
    keep_from = agg.max_ts_ms - ctx.allowed_lateness_ms - ctx.realtime_window_ms
    plays, impressions = agg.recent_plays, agg.recent_impressions
    if ts_ms >= keep_from:
        if event_type == f.PLAY_START:
            plays.add(ts_ms)
        elif event_type == "impression":
            impressions.add(ts_ms)
    if plays.stamps and plays.stamps[0][0] < keep_from:
        plays.prune(keep_from)
    if impressions.stamps and impressions.stamps[0][0] < keep_from:
        impressions.prune(keep_from)
    if len(agg.buckets) > ctx.long_days + 2:
        oldest = _oldest_kept_bucket(agg.max_ts_ms, ctx)
        for old in [b for b in agg.buckets if b < oldest]:
            del agg.buckets[old]


_CONTENT_DELTAS: dict[tuple[str, float | None], tuple[tuple[int, Any], ...]] = {}


def _content_delta(event_type: str, rating: float | None) -> tuple[tuple[int, Any], ...]:
    """:func:`~flywheel.features.formulas.content_event_delta` as its non-zero (field index, value)
    pairs, kept per (event type, rating): the pairs are few (a rating is a small set of values)."""
    key = (event_type, rating)
    delta = _CONTENT_DELTAS.get(key)
    if delta is None:
        state = f.content_event_delta({"event_type": event_type, "rating": rating})
        delta = tuple((i, getattr(state, name)) for i, name in enumerate(CONTENT_FIELDS) if getattr(state, name))
        if len(_CONTENT_DELTAS) < 4096:
            _CONTENT_DELTAS[key] = delta
    return delta


def content_state(bucket: list[Any]) -> f.ContentState:
    """A day bucket of :class:`ContentAggregate` as the formulas' state."""
    return f.ContentState(*bucket)


def content_features(content_id: str, agg: ContentAggregate, as_of_ms: int, ctx: FeatureContext) -> dict[str, Any]:
    """The title's feature row as of ``as_of_ms``."""
    last = f.bucket_of(as_of_ms - 1)
    short = f.merge_all_contents(map(content_state, _window(agg.buckets, last, ctx.short_days)))
    long = f.merge_all_contents(map(content_state, _window(agg.buckets, last, ctx.long_days)))
    values = f.finalize_content(short, long, ctx.catalog.get(content_id), as_of_ms, ctx.vocab)
    values["content_plays_1h"] = int(agg.recent_plays.total(as_of_ms, ctx.realtime_window_ms))
    values["content_impressions_1h"] = int(agg.recent_impressions.total(as_of_ms, ctx.realtime_window_ms))
    return {"content_id": content_id, "event_timestamp": as_of_ms, **values}
