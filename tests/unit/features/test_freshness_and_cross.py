"""Freshness assessment and the cross features (scalar definition vs the vectorized form)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from flywheel.features.cross import cross_features, cross_matrix, unit_rows
from flywheel.features.freshness import assess

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


def test_freshness_reports_age_and_staleness() -> None:
    report = assess(
        {"user_features": NOW - timedelta(hours=2), "content_features": NOW - timedelta(hours=40), "x": None},
        {"user_features": NOW - timedelta(hours=1)},
        NOW,
        timedelta(hours=36),
    )
    by_view = {r.view: r for r in report}
    assert [r.view for r in report] == ["content_features", "user_features", "x"]
    assert (by_view["user_features"].age_seconds, by_view["user_features"].stale) == (7200.0, False)
    assert by_view["user_features"].materialized_until == NOW - timedelta(hours=1)
    assert (by_view["content_features"].age_seconds, by_view["content_features"].stale) == (144000.0, True)
    assert (by_view["x"].age_seconds, by_view["x"].stale) == (None, True)


USER = {
    "user_genre_watch_hours_7d": [0.0, 1.5, 0.0],
    "user_genre_affinity_vector": [0.5, 0.5, 0.0],
    "user_creators_watched_30d": ["k1", "k9"],
}


def test_cross_features_of_one_pair() -> None:
    content = {"content_genre_vector": [1.0, 1.0, 0.0], "content_creator_id": "k1"}
    assert cross_features(USER, content) == {
        "user_has_watched_same_genre_7d": 1.0,
        "user_watched_same_creator": 1.0,
        "user_x_content_genre_overlap": pytest.approx(1.0, abs=1e-15),
    }
    other = {"content_genre_vector": [1.0, 0.0, 1.0], "content_creator_id": ""}
    assert cross_features(USER, other) == {
        "user_has_watched_same_genre_7d": 0.0,
        "user_watched_same_creator": 0.0,
        "user_x_content_genre_overlap": pytest.approx(0.5, abs=1e-15),
    }


def test_cross_matrix_equals_the_scalar_definition() -> None:
    rng = np.random.default_rng(4)
    genres = (rng.random((50, 3)) > 0.5).astype(float)
    creators = ["k1", "k2", "", "k9"]
    codes_of = {"k1": 0, "k2": 1, "k9": 2}
    content_creators = [creators[i % 4] for i in range(50)]
    codes = np.array([codes_of.get(c, -1) for c in content_creators])
    mask = np.zeros(4, dtype=bool)
    mask[[codes_of[c] for c in USER["user_creators_watched_30d"]]] = True
    got = cross_matrix(
        USER["user_genre_affinity_vector"], USER["user_genre_watch_hours_7d"], mask, unit_rows(genres), genres, codes
    )
    for i in range(50):
        want = cross_features(
            USER, {"content_genre_vector": list(genres[i]), "content_creator_id": content_creators[i]}
        )
        assert list(got[i]) == pytest.approx([want[k] for k in sorted(want)], abs=1e-12)
