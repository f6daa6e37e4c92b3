"""Pure feature formulas, shared by the streaming job and the batch (Spark) job.

Every activity feature is computed in three steps that an incremental engine can run:

1. ``*_event_delta(event)`` turns one validated event into the contribution it makes to the
   per-entity aggregate state of its day bucket (``timestamp_ms // DAY_MS``);
2. ``merge_*`` adds two states (associative, commutative, identity ``empty_*``), so a stream keeps
   one state per entity and day and merges the days of a trailing window;
3. ``finalize_*`` turns the states of the short and the long window (plus the catalog or user
   attributes) into feature values as of a snapshot time.

A snapshot at time ``T`` only ever sees events stamped strictly before ``T``: the state of a
window ending with bucket ``d`` holds the events of buckets ``d - w + 1 .. d`` and is stamped
``min((d + 1) * DAY_MS, cutoff_ms)``. The Spark job computes the same numbers with Spark SQL and a
test pins one to the other.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import add
from typing import Any

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
PLAY_START = "playback.started"
PLAY_COMPLETE = "playback.completed"
PLAY_STOP = "playback.stopped"
#: Events that report time watched.
WATCH_EVENTS = frozenset({"playback.stopped", "playback.completed", "playback.paused"})
#: Events that end a play (the denominator of the skip rate).
PLAY_END_EVENTS = frozenset({PLAY_STOP, PLAY_COMPLETE})
#: Event types whose :func:`user_event_delta` can be non-zero; any other event (impressions,
#: clicks, likes, ...) contributes the zero state, so incremental folds may skip them.
USER_STATE_EVENTS = WATCH_EVENTS | PLAY_END_EVENTS | frozenset({PLAY_START, "search"})
#: Device types of the event schema, in the order that breaks preference ties.
DEVICE_TYPES: tuple[str, ...] = ("tv", "mobile", "tablet", "web", "console", "other")
#: Time-of-day slots (UTC hours): night 0-6, morning 6-12, afternoon 12-18, evening 18-24.
TIME_OF_DAY_SLOTS = 4
UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class GenreVocabulary:
    """The genres of the genre vectors; any other genre counts in the trailing ``other`` slot."""

    genres: tuple[str, ...]

    @property
    def size(self) -> int:
        """Length of a genre vector (the vocabulary plus ``other``)."""
        return len(self.genres) + 1

    def index(self, genre: str) -> int:
        """Slot of ``genre`` in a genre vector."""
        try:
            return self.genres.index(genre)
        except ValueError:
            return len(self.genres)


@dataclass(frozen=True, slots=True)
class ContentMeta:
    """Catalog attributes of one title (not all carried by events)."""

    content_id: str
    genres: tuple[str, ...] = ()
    creator_id: str = ""
    duration_seconds: float | None = None
    release_ts_ms: int | None = None


@dataclass(frozen=True, slots=True)
class UserProfile:
    """Account attributes of one user."""

    user_id: str
    tier: str = UNKNOWN
    signup_ts_ms: int | None = None


@dataclass(frozen=True, slots=True)
class UserState:
    """Mergeable aggregate of one user's events over some buckets (sums, counts, a set)."""

    watch_seconds: float = 0.0
    genre_watch_seconds: tuple[float, ...] = ()
    """Watch seconds per genre slot (a title's watch time is split evenly over its genres)."""
    creators: frozenset[str] = frozenset()
    """Creators of the titles started."""
    plays: int = 0
    """``playback.started`` events."""
    completions: int = 0
    play_ends: int = 0
    skips: int = 0
    searches: int = 0
    time_of_day_plays: tuple[int, ...] = (0,) * TIME_OF_DAY_SLOTS
    device_plays: tuple[int, ...] = (0,) * len(DEVICE_TYPES)
    sessions: int = 0
    session_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class ContentState:
    """Mergeable aggregate of one title's events over some buckets."""

    plays: int = 0
    completions: int = 0
    impressions: int = 0
    rating_sum: float = 0.0
    rating_count: int = 0


def _add(a: Sequence[float], b: Sequence[float]) -> tuple[Any, ...]:
    if not a:
        return tuple(b)
    if not b:
        return tuple(a)
    if len(a) != len(b):
        raise ValueError(f"cannot add vectors of {len(a)} and {len(b)} values")
    return tuple(map(add, a, b))  # the stream merges states per event: map is twice as fast as a generator


def empty_user_state() -> UserState:
    """The identity of :func:`merge_user`."""
    return UserState()


def merge_user(a: UserState, b: UserState) -> UserState:
    """Add two user states (associative and commutative)."""
    return UserState(
        watch_seconds=a.watch_seconds + b.watch_seconds,
        genre_watch_seconds=_add(a.genre_watch_seconds, b.genre_watch_seconds),
        creators=a.creators | b.creators,
        plays=a.plays + b.plays,
        completions=a.completions + b.completions,
        play_ends=a.play_ends + b.play_ends,
        skips=a.skips + b.skips,
        searches=a.searches + b.searches,
        time_of_day_plays=_add(a.time_of_day_plays, b.time_of_day_plays),
        device_plays=_add(a.device_plays, b.device_plays),
        sessions=a.sessions + b.sessions,
        session_seconds=a.session_seconds + b.session_seconds,
    )


def merge_content(a: ContentState, b: ContentState) -> ContentState:
    """Add two content states (associative and commutative)."""
    return ContentState(
        plays=a.plays + b.plays,
        completions=a.completions + b.completions,
        impressions=a.impressions + b.impressions,
        rating_sum=a.rating_sum + b.rating_sum,
        rating_count=a.rating_count + b.rating_count,
    )


def merge_all_users(states: Iterable[UserState]) -> UserState:
    """Merge any number of user states."""
    out = UserState()
    for state in states:
        out = merge_user(out, state)
    return out


def merge_all_contents(states: Iterable[ContentState]) -> ContentState:
    """Merge any number of content states."""
    out = ContentState()
    for state in states:
        out = merge_content(out, state)
    return out


def bucket_of(timestamp_ms: int) -> int:
    """Day bucket of a timestamp (UTC days since the epoch)."""
    return timestamp_ms // DAY_MS


def time_of_day_slot(timestamp_ms: int) -> int:
    """Time-of-day slot (0..3) of a UTC timestamp."""
    return (timestamp_ms % DAY_MS) // HOUR_MS // (24 // TIME_OF_DAY_SLOTS)


def genre_split(genres: Sequence[str], seconds: float, vocab: GenreVocabulary) -> tuple[float, ...]:
    """Watch seconds spread evenly over a title's genres, as a genre vector."""
    out = [0.0] * vocab.size
    if genres and seconds:
        share = seconds / len(genres)
        for genre in genres:
            out[vocab.index(genre)] += share
    return tuple(out)


def is_skip(event: Mapping[str, Any], skip_threshold_seconds: float) -> bool:
    """A ``playback.stopped`` whose playhead (or, without one, watch time) is under the threshold."""
    if event["event_type"] != PLAY_STOP:
        return False
    position = event.get("position_seconds")
    if position is None:
        position = event.get("watch_seconds") or 0.0
    return bool(position < skip_threshold_seconds)


def user_event_delta(
    event: Mapping[str, Any],
    catalog: Mapping[str, ContentMeta],
    vocab: GenreVocabulary,
    *,
    skip_threshold_seconds: float = 30.0,
) -> UserState:
    """The contribution of one validated event to its user's state (sessions excluded).

    Args:
        event: A validated schema-v2 event.
        catalog: Catalog attributes by content id (unknown titles have no genre or creator).
        vocab: The genre vocabulary.
        skip_threshold_seconds: Playhead under which a stopped play is a skip.
    """
    kind = event["event_type"]
    meta = catalog.get(event.get("content_id") or "")
    genres = meta.genres if meta else ()
    watch = float(event.get("watch_seconds") or 0.0) if kind in WATCH_EVENTS else 0.0
    started = kind == PLAY_START
    tod = [0] * TIME_OF_DAY_SLOTS
    devices = [0] * len(DEVICE_TYPES)
    if started:
        tod[time_of_day_slot(event["timestamp_ms"])] = 1
        device = event["device"]["type"]
        devices[DEVICE_TYPES.index(device) if device in DEVICE_TYPES else len(DEVICE_TYPES) - 1] = 1
    return UserState(
        watch_seconds=watch,
        genre_watch_seconds=genre_split(genres, watch, vocab),
        creators=frozenset({meta.creator_id}) if started and meta and meta.creator_id else frozenset(),
        plays=int(started),
        completions=int(kind == PLAY_COMPLETE),
        play_ends=int(kind in PLAY_END_EVENTS),
        skips=int(is_skip(event, skip_threshold_seconds)),
        searches=int(kind == "search"),
        time_of_day_plays=tuple(tod),
        device_plays=tuple(devices),
    )


def session_delta(start_ms: int, end_ms: int) -> UserState:
    """The contribution of one closed session (counted in the bucket of its last event)."""
    return UserState(sessions=1, session_seconds=(end_ms - start_ms) / 1000.0)


def content_event_delta(event: Mapping[str, Any]) -> ContentState:
    """The contribution of one validated event to its title's state."""
    kind = event["event_type"]
    rating = event.get("rating")
    return ContentState(
        plays=int(kind == PLAY_START),
        completions=int(kind == PLAY_COMPLETE),
        impressions=int(kind == "impression"),
        rating_sum=float(rating) if rating is not None else 0.0,
        rating_count=int(rating is not None),
    )


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, 0.0 when the denominator is 0."""
    return numerator / denominator if denominator else 0.0


def normalized(values: Sequence[float]) -> list[float]:
    """Values divided by their sum (all zeros when the sum is 0)."""
    total = sum(values)
    return [v / total for v in values] if total else [0.0] * len(values)


def cosine_similarity(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine of two vectors, 0.0 when either is all zeros."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def genre_multi_hot(genres: Sequence[str], vocab: GenreVocabulary) -> list[float]:
    """1.0 in the slot of each of a title's genres."""
    out = [0.0] * vocab.size
    for genre in genres:
        out[vocab.index(genre)] = 1.0
    return out


def days_between(later_ms: int, earlier_ms: int | None) -> float:
    """Days from ``earlier_ms`` to ``later_ms`` (-1.0 when unknown)."""
    return -1.0 if earlier_ms is None else (later_ms - earlier_ms) / DAY_MS


#: Names and Feast types of the user features, in order.
USER_FEATURES: tuple[tuple[str, str], ...] = (
    ("user_total_watch_hours_7d", "float"),
    ("user_genre_affinity_vector", "float_list"),
    ("user_genre_watch_hours_7d", "float_list"),
    ("user_avg_session_length_30d", "float"),
    ("user_skip_rate_7d", "float"),
    ("user_search_to_play_ratio_7d", "float"),
    ("user_time_of_day_distribution", "float_list"),
    ("user_device_preference", "string"),
    ("user_content_completion_rate_30d", "float"),
    ("user_creators_watched_30d", "string_list"),
    ("user_days_since_signup", "float"),
    ("user_subscription_tier", "string"),
)
#: Names and Feast types of the content features, in order.
CONTENT_FEATURES: tuple[tuple[str, str], ...] = (
    ("content_total_plays_7d", "int"),
    ("content_avg_completion_rate", "float"),
    ("content_genre_tags", "string_list"),
    ("content_genre_vector", "float_list"),
    ("content_creator_id", "string"),
    ("content_release_recency_days", "float"),
    ("content_avg_rating", "float"),
    ("content_play_to_impression_ratio", "float"),
)


def finalize_user(
    short: UserState,
    long: UserState,
    profile: UserProfile | None,
    as_of_ms: int,
    vocab: GenreVocabulary,
) -> dict[str, Any]:
    """User feature values from the states of the short (7d) and long (30d) windows.

    Args:
        short: Merged state of the short window.
        long: Merged state of the long window.
        profile: The user's attributes; None when the users table does not know the user.
        as_of_ms: The snapshot time (for the days since signup).
        vocab: The genre vocabulary (the length of the genre vectors).
    """
    devices = long.device_plays
    preference = UNKNOWN
    if any(devices):
        preference = DEVICE_TYPES[max(range(len(devices)), key=lambda i: (devices[i], -i))]
    genre_long = long.genre_watch_seconds or (0.0,) * vocab.size
    genre_short = short.genre_watch_seconds or (0.0,) * vocab.size
    return {
        "user_total_watch_hours_7d": short.watch_seconds / 3600.0,
        "user_genre_affinity_vector": normalized(genre_long),
        "user_genre_watch_hours_7d": [s / 3600.0 for s in genre_short],
        "user_avg_session_length_30d": ratio(long.session_seconds, long.sessions),
        "user_skip_rate_7d": ratio(short.skips, short.play_ends),
        "user_search_to_play_ratio_7d": short.searches / max(short.plays, 1),
        "user_time_of_day_distribution": normalized(long.time_of_day_plays),
        "user_device_preference": preference,
        "user_content_completion_rate_30d": min(1.0, ratio(long.completions, long.plays)),
        "user_creators_watched_30d": sorted(long.creators),
        "user_days_since_signup": days_between(as_of_ms, profile.signup_ts_ms if profile else None),
        "user_subscription_tier": profile.tier if profile else UNKNOWN,
    }


def finalize_content(
    short: ContentState,
    long: ContentState,
    meta: ContentMeta | None,
    as_of_ms: int,
    vocab: GenreVocabulary,
) -> dict[str, Any]:
    """Content feature values from the states of the short (7d) and long (30d) windows."""
    genres = list(meta.genres) if meta else []
    return {
        "content_total_plays_7d": short.plays,
        "content_avg_completion_rate": min(1.0, ratio(long.completions, long.plays)),
        "content_genre_tags": genres,
        "content_genre_vector": genre_multi_hot(genres, vocab),
        "content_creator_id": meta.creator_id if meta else "",
        "content_release_recency_days": days_between(as_of_ms, meta.release_ts_ms if meta else None),
        "content_avg_rating": ratio(long.rating_sum, long.rating_count),
        "content_play_to_impression_ratio": short.plays / max(short.impressions, 1),
    }


def snapshot_buckets(active_buckets: Iterable[int], cutoff_ms: int, long_window_days: int) -> list[int]:
    """Day buckets at whose end an entity gets a feature row.

    Every active day and the days after it until its long window has emptied, stopping at the
    cutoff's day. An idle stretch longer than the long window gets no rows: the last row before it
    already holds the emptied windows, which stay the values as of any later time (so years of
    historical data cost rows in proportion to the active days, not to the span).
    """
    stop = bucket_of(cutoff_ms - 1)
    out: set[int] = set()
    for bucket in set(active_buckets):
        out.update(range(bucket, min(bucket + long_window_days, stop) + 1))
    return sorted(out)


def entity_snapshot_buckets(
    active_buckets: Iterable[int], known: bool, origin_bucket: int, cutoff_ms: int, long_window_days: int
) -> list[int]:
    """Every day bucket at whose end one entity gets a feature row.

    * an entity of the catalog or users table (``known``) gets a seed row at the end of the day
      before the first event of the data (``origin_bucket - 1``), so that its attributes (genres,
      creator, tier, ...) are known from the start, with empty activity;
    * an entity with events gets the days of :func:`snapshot_buckets`;
    * a known entity without events also gets a row on the cutoff's day.
    """
    buckets = sorted(set(active_buckets))
    out = [origin_bucket - 1] if known else []
    if buckets:
        out.extend(snapshot_buckets(buckets, cutoff_ms, long_window_days))
    elif known:
        out.append(bucket_of(cutoff_ms - 1))
    return out


def snapshot_time_ms(bucket: int, cutoff_ms: int) -> int:
    """The time a snapshot of ``bucket`` is stamped: the end of the day, or the cutoff if earlier."""
    return min((bucket + 1) * DAY_MS, cutoff_ms)
