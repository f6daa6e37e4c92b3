"""Per-entity, per-day aggregate state and the feature tables computed from it in Python.

This is the reference the Spark job is pinned to and the shape the streaming job keeps: one
:class:`~flywheel.features.formulas.UserState` / ``ContentState`` per entity and day bucket, merged
over the trailing windows and finalized at each snapshot.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flywheel.features import formulas as f
from flywheel.features.sessions import sessionize


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """Window lengths and thresholds of the activity features."""

    short_days: int = 7
    long_days: int = 30
    session_gap_ms: int = 30 * 60_000
    skip_threshold_seconds: float = 30.0


def user_bucket_states(
    events: Iterable[Mapping[str, Any]],
    catalog: Mapping[str, f.ContentMeta],
    vocab: f.GenreVocabulary,
    spec: WindowSpec,
) -> dict[str, dict[int, f.UserState]]:
    """Per user and day bucket, the merged state of the user's events and closed sessions."""
    states: dict[str, dict[int, f.UserState]] = defaultdict(dict)
    times: dict[str, list[int]] = defaultdict(list)
    for event in events:
        user, ts = event["user_id"], event["timestamp_ms"]
        bucket = f.bucket_of(ts)
        delta = f.user_event_delta(event, catalog, vocab, skip_threshold_seconds=spec.skip_threshold_seconds)
        states[user][bucket] = f.merge_user(states[user].get(bucket, f.UserState()), delta)
        times[user].append(ts)
    for user, stamps in times.items():
        for session in sessionize(stamps, spec.session_gap_ms):
            bucket = f.bucket_of(session.end_ms)
            delta = f.session_delta(session.start_ms, session.end_ms)
            states[user][bucket] = f.merge_user(states[user].get(bucket, f.UserState()), delta)
    return dict(states)


def content_bucket_states(events: Iterable[Mapping[str, Any]]) -> dict[str, dict[int, f.ContentState]]:
    """Per title and day bucket, the merged state of the events about the title."""
    states: dict[str, dict[int, f.ContentState]] = defaultdict(dict)
    for event in events:
        content = event.get("content_id")
        if not content:
            continue
        bucket = f.bucket_of(event["timestamp_ms"])
        states[content][bucket] = f.merge_content(
            states[content].get(bucket, f.ContentState()), f.content_event_delta(event)
        )
    return dict(states)


def _window(buckets: Mapping[int, Any], end: int, days: int) -> list[Any]:
    return [buckets[b] for b in range(end - days + 1, end + 1) if b in buckets]


def user_feature_rows(
    events: list[Mapping[str, Any]],
    catalog: Mapping[str, f.ContentMeta],
    users: Mapping[str, f.UserProfile],
    vocab: f.GenreVocabulary,
    spec: WindowSpec,
    cutoff_ms: int,
) -> list[dict[str, Any]]:
    """Daily snapshot rows of the user features (``user_id``, ``event_timestamp`` in ms, features).

    Events at or after ``cutoff_ms`` are ignored. See ``formulas.entity_snapshot_buckets`` for
    which days get a row.
    """
    kept = [e for e in events if e["timestamp_ms"] < cutoff_ms]
    states = user_bucket_states(kept, catalog, vocab, spec)
    rows = []
    origin = f.bucket_of(min(e["timestamp_ms"] for e in kept)) if kept else f.bucket_of(cutoff_ms - 1)
    for user in sorted(set(states) | set(users)):
        buckets = states.get(user, {})
        for d in f.entity_snapshot_buckets(buckets, user in users, origin, cutoff_ms, spec.long_days):
            as_of = f.snapshot_time_ms(d, cutoff_ms)
            short = f.merge_all_users(_window(buckets, d, spec.short_days))
            long = f.merge_all_users(_window(buckets, d, spec.long_days))
            values = f.finalize_user(short, long, users.get(user), as_of, vocab)
            rows.append({"user_id": user, "event_timestamp": as_of, **values})
    return rows


def content_feature_rows(
    events: list[Mapping[str, Any]],
    catalog: Mapping[str, f.ContentMeta],
    vocab: f.GenreVocabulary,
    spec: WindowSpec,
    cutoff_ms: int,
) -> list[dict[str, Any]]:
    """Daily snapshot rows of the content features (``content_id``, ``event_timestamp`` in ms, features)."""
    kept = [e for e in events if e["timestamp_ms"] < cutoff_ms]
    states = content_bucket_states(kept)
    rows = []
    origin = f.bucket_of(min(e["timestamp_ms"] for e in kept)) if kept else f.bucket_of(cutoff_ms - 1)
    for content in sorted(set(states) | set(catalog)):
        buckets = states.get(content, {})
        for d in f.entity_snapshot_buckets(buckets, content in catalog, origin, cutoff_ms, spec.long_days):
            as_of = f.snapshot_time_ms(d, cutoff_ms)
            short = f.merge_all_contents(_window(buckets, d, spec.short_days))
            long = f.merge_all_contents(_window(buckets, d, spec.long_days))
            values = f.finalize_content(short, long, catalog.get(content), as_of, vocab)
            rows.append({"content_id": content, "event_timestamp": as_of, **values})
    return rows
