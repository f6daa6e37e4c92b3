"""The pure feature formulas, with exact expected numbers from a hand-checked scenario."""

from __future__ import annotations

import pytest

from flywheel.features import formulas as f
from flywheel.features.aggregates import WindowSpec, content_feature_rows, user_feature_rows
from flywheel.features.sessions import Session, extend_session, sessionize
from tests.unit.features.factory import CATALOG, HOUR, MIN, T0, USERS, event, scenario

VOCAB = f.GenreVocabulary(("comedy", "crime", "drama", "kids"))
SPEC = WindowSpec()
D = f.DAY_MS
CUTOFF = T0 + 3 * D


def _row(rows: list[dict], key: str, entity: str, as_of: int) -> dict:
    (row,) = [r for r in rows if r[key] == entity and r["event_timestamp"] == as_of]
    return row


def test_sessionize_splits_on_a_gap_longer_than_the_gap_only() -> None:
    gap = 30 * MIN
    times = [0, 10 * MIN, 40 * MIN, 70 * MIN + 1, 70 * MIN + 2]
    assert sessionize(reversed(times), gap) == [Session(0, 40 * MIN, 3), Session(70 * MIN + 1, 70 * MIN + 2, 2)]
    assert sessionize([], gap) == []


def test_extend_session_reports_the_session_it_closes() -> None:
    open_s, closed = extend_session(None, 0, 1000)
    open_s, closed = extend_session(open_s, 1000, 1000)
    assert (open_s, closed) == (Session(0, 1000, 2), None)
    open_s, closed = extend_session(open_s, 2001, 1000)
    assert (open_s, closed) == (Session(2001, 2001, 1), Session(0, 1000, 2))


def test_time_of_day_slots_and_buckets() -> None:
    assert [f.time_of_day_slot(T0 + h * HOUR) for h in (0, 5, 6, 11, 12, 17, 18, 23)] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert f.bucket_of(T0 - 1) == f.bucket_of(T0) - 1


def test_user_features_at_the_end_of_day_two() -> None:
    rows = user_feature_rows(scenario(), CATALOG, USERS, VOCAB, SPEC, CUTOFF)
    u1 = _row(rows, "user_id", "u000001", CUTOFF)
    assert u1 == {
        "user_id": "u000001",
        "event_timestamp": CUTOFF,
        "user_total_watch_hours_7d": 3432 / 3600,
        "user_genre_affinity_vector": [12 / 3432, 1410 / 3432, 1410 / 3432, 300 / 3432, 300 / 3432],
        "user_genre_watch_hours_7d": [12 / 3600, 1410 / 3600, 1410 / 3600, 300 / 3600, 300 / 3600],
        "user_avg_session_length_30d": 1244.0,
        "user_skip_rate_7d": 1 / 3,
        "user_search_to_play_ratio_7d": 1 / 3,
        "user_time_of_day_distribution": [0.0, 1 / 3, 0.0, 2 / 3],
        "user_device_preference": "tv",
        "user_content_completion_rate_30d": 1 / 3,
        "user_creators_watched_30d": ["k1", "k2"],
        "user_days_since_signup": 43.0,
        "user_subscription_tier": "premium",
    }
    day0 = _row(rows, "user_id", "u000001", T0 + D)
    assert day0["user_total_watch_hours_7d"] == 2832 / 3600
    assert day0["user_skip_rate_7d"] == 0.5
    assert day0["user_avg_session_length_30d"] == 1536.0
    assert day0["user_time_of_day_distribution"] == [0.0, 0.0, 0.0, 1.0]
    assert day0["user_days_since_signup"] == 41.0


def test_user_without_known_titles_or_plays_gets_zeros_not_errors() -> None:
    rows = user_feature_rows(scenario(), CATALOG, USERS, VOCAB, SPEC, CUTOFF)
    u2 = _row(rows, "user_id", "u000002", CUTOFF)
    assert u2["user_total_watch_hours_7d"] == 300 / 3600
    assert u2["user_search_to_play_ratio_7d"] == 2.0
    assert u2["user_avg_session_length_30d"] == 210.0
    assert u2["user_genre_affinity_vector"] == [0.0] * 5
    assert u2["user_device_preference"] == "web"
    assert u2["user_time_of_day_distribution"] == [1.0, 0.0, 0.0, 0.0]
    assert u2["user_creators_watched_30d"] == []
    assert u2["user_days_since_signup"] == 8.0
    assert [r["event_timestamp"] for r in rows if r["user_id"] == "u000002"] == [T0, T0 + 2 * D, CUTOFF]


def test_known_entities_get_a_seed_row_before_the_first_event() -> None:
    rows = content_feature_rows(scenario(), CATALOG, VOCAB, SPEC, CUTOFF)
    seed = _row(rows, "content_id", "c000003", T0)  # first played on day 2; known from the catalog
    assert (seed["content_total_plays_7d"], seed["content_genre_vector"]) == (0, [0.0, 0.0, 0.0, 1.0, 1.0])
    assert (seed["content_creator_id"], seed["content_release_recency_days"]) == ("k1", 2.0)
    assert [r["event_timestamp"] for r in rows if r["content_id"] == "c999999"] == [T0 + 2 * D, T0 + 3 * D]
    assert f.entity_snapshot_buckets([], True, 10, 20 * D, 30) == [9, 19]
    assert f.entity_snapshot_buckets([12], False, 10, 20 * D, 30) == list(range(12, 20))


def test_content_features_at_the_end_of_day_two() -> None:
    rows = content_feature_rows(scenario(), CATALOG, VOCAB, SPEC, CUTOFF)
    assert _row(rows, "content_id", "c000001", CUTOFF) == {
        "content_id": "c000001",
        "event_timestamp": CUTOFF,
        "content_total_plays_7d": 1,
        "content_avg_completion_rate": 1.0,
        "content_genre_tags": ["drama", "crime"],
        "content_genre_vector": [0.0, 1.0, 1.0, 0.0, 0.0],
        "content_creator_id": "k1",
        "content_release_recency_days": 13.0,
        "content_avg_rating": 4.0,
        "content_play_to_impression_ratio": 0.5,
    }
    c3 = _row(rows, "content_id", "c000003", CUTOFF)
    assert (c3["content_play_to_impression_ratio"], c3["content_avg_rating"]) == (1.0, 5.0)
    assert c3["content_genre_vector"] == [0.0, 0.0, 0.0, 1.0, 1.0]
    unknown = _row(rows, "content_id", "c999999", CUTOFF)
    assert (unknown["content_genre_tags"], unknown["content_creator_id"], unknown["content_release_recency_days"]) == (
        [],
        "",
        -1.0,
    )


def test_windows_expire_old_activity() -> None:
    events = [event("playback.started", T0), event("playback.completed", T0 + MIN, watch=60.0)]
    rows = user_feature_rows(events, CATALOG, {}, VOCAB, SPEC, T0 + 40 * D)
    by_day = {(r["event_timestamp"] - T0) // D: r for r in rows}
    assert sorted(by_day) == list(range(1, 32))  # day 0 .. day 0 + 30, stamped at each day's end
    assert by_day[7]["user_total_watch_hours_7d"] == 60 / 3600
    assert by_day[8]["user_total_watch_hours_7d"] == 0.0
    assert by_day[30]["user_content_completion_rate_30d"] == 1.0
    assert by_day[31]["user_content_completion_rate_30d"] == 0.0
    assert by_day[31]["user_subscription_tier"] == f.UNKNOWN


def test_merge_is_associative_and_commutative() -> None:
    deltas = [f.user_event_delta(e, CATALOG, VOCAB) for e in scenario()]
    a = f.merge_all_users(deltas)
    b = f.merge_all_users(reversed(deltas))
    c = f.merge_user(f.merge_all_users(deltas[:5]), f.merge_all_users(deltas[5:]))
    assert a.plays == b.plays == c.plays == 4
    assert a.genre_watch_seconds == pytest.approx(b.genre_watch_seconds)
    assert a.creators == b.creators == c.creators == frozenset({"k1", "k2"})
    assert f.merge_user(a, f.empty_user_state()) == a


def test_skip_uses_the_playhead_and_the_threshold() -> None:
    assert f.is_skip(event("playback.stopped", T0, watch=100.0, position_s=29.9), 30.0)
    assert not f.is_skip(event("playback.stopped", T0, watch=10.0, position_s=30.0), 30.0)
    assert f.is_skip(event("playback.stopped", T0, watch=10.0), 30.0)
    assert not f.is_skip(event("playback.completed", T0, watch=1.0, position_s=1.0), 30.0)


def test_cosine_and_vectors() -> None:
    assert f.cosine_similarity([1.0, 0.0], [1.0, 1.0]) == pytest.approx(2**-0.5, abs=1e-15)
    assert f.cosine_similarity([0.0, 0.0], [1.0, 1.0]) == 0.0
    assert f.genre_split(["drama", "zzz"], 10.0, VOCAB) == (0.0, 0.0, 5.0, 0.0, 5.0)
    assert f.normalized([1, 3]) == [0.25, 0.75]


def test_snapshot_buckets_stop_at_the_cutoff() -> None:
    assert f.snapshot_buckets([10, 12], cutoff_ms=14 * D + 5, long_window_days=30) == list(range(10, 15))


def test_snapshot_buckets_skip_idle_stretches_longer_than_the_long_window() -> None:
    # active on days 10 and 100, long window 30: rows on 10..40 and 100..130, none in between
    assert f.snapshot_buckets([100, 10], cutoff_ms=1000 * D, long_window_days=30) == [
        *range(10, 41),
        *range(100, 131),
    ]
    assert f.snapshot_time_ms(14, 14 * D + 5) == 14 * D + 5
    assert f.snapshot_time_ms(13, 14 * D + 5) == 14 * D


def test_only_user_state_events_change_the_user_state() -> None:
    """Incremental folds skip the other event types, so their delta must be the zero state."""
    from flywheel.events.schema import get_schema

    zero = f.UserState(genre_watch_seconds=(0.0,) * VOCAB.size)
    for kind in get_schema().event_types:
        delta = f.user_event_delta(event(kind, T0, watch=120.0, position_s=10.0, query="q"), CATALOG, VOCAB)
        if kind in f.USER_STATE_EVENTS:
            assert delta != zero, kind
        else:
            assert delta == zero, kind
