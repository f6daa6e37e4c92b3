"""The fast read path returns what Feast's SDK returns (plus cross features), on SQLite and Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flywheel.config.features import FeaturesConfig
from flywheel.features import formulas as f
from flywheel.features.cross import CROSS_FEATURES, cross_features
from flywheel.features.freshness import view_freshness
from flywheel.features.online import CONTENT_NUMERIC, OnlineFeatureReader
from flywheel.features.store import (
    CONTENT_VIEW,
    USER_VIEW,
    apply_repo,
    materialize,
    offline_path,
    open_store,
    write_offline_table,
)
from tests.integration.features.pipeline import GENRES, REPO

pytestmark = pytest.mark.integration
VOCAB = f.GenreVocabulary(GENRES)
NOW = datetime.now(UTC).replace(microsecond=0)


def _tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    stamp = pd.Timestamp(NOW - timedelta(hours=3))
    contents = []
    for i in range(12):
        genres = [GENRES[i % 4], "opera"] if i % 3 else [GENRES[i % 4]]
        contents.append(
            {
                "content_id": f"c{i:06d}",
                "event_timestamp": stamp,
                "content_total_plays_7d": 10 * i,
                "content_avg_completion_rate": i / 12,
                "content_genre_tags": genres,
                "content_genre_vector": f.genre_multi_hot(genres, VOCAB),
                "content_creator_id": f"k{i % 3}",
                "content_release_recency_days": float(i),
                "content_avg_rating": 5 - i / 4,
                "content_play_to_impression_ratio": i / 24,
            }
        )
    users = [
        {
            **f.finalize_user(
                f.UserState(), f.UserState(), f.UserProfile("u000001", "premium", 0), 86_400_000 * 10, VOCAB
            ),
            "user_id": "u000001",
            "event_timestamp": stamp,
            "user_genre_affinity_vector": [0.1, 0.2, 0.3, 0.0, 0.4],
            "user_genre_watch_hours_7d": [0.0, 2.0, 0.0, 0.0, 0.0],
            "user_creators_watched_30d": ["k1", "zz"],
        }
    ]
    return pd.DataFrame(users), pd.DataFrame(contents)


def _store(tmp: Path, **settings: Any) -> tuple[Any, FeaturesConfig]:
    cfg = FeaturesConfig(repo_path=REPO, data_dir=tmp, genres=GENRES, **settings)
    users, contents = _tables()
    for view, frame in ((USER_VIEW, users), (CONTENT_VIEW, contents)):
        write_offline_table(frame, offline_path(cfg, view))
    store = open_store(cfg)
    apply_repo(store, cfg.repo_path)
    materialize(store, NOW - timedelta(days=1), NOW)
    return store, cfg


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Any, FeaturesConfig]:
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        return _store(tmp_path, online_store="redis", redis_url=url)
    return _store(tmp_path)


def test_fast_path_equals_the_sdk_read(backend: tuple[Any, FeaturesConfig]) -> None:
    store, _ = backend
    reader = OnlineFeatureReader(store, vocab=VOCAB)
    assert reader.refresh([f"c{i:06d}" for i in range(14)]) == 12  # two ids were never written
    ids = ["c000003", "c404404", "c000001", "c000011", "c000001"]
    got = reader.read("u000001", ids)
    sdk = store.get_online_features(
        features=[f"{CONTENT_VIEW}:{n}" for n, _ in f.CONTENT_FEATURES], entity_rows=[{"content_id": c} for c in ids]
    ).to_dict()
    user_sdk = store.get_online_features(
        features=[f"{USER_VIEW}:{n}" for n, _ in f.USER_FEATURES], entity_rows=[{"user_id": "u000001"}]
    ).to_dict()
    assert got.user_known
    assert got.user == {name: user_sdk[name][0] for name, _ in f.USER_FEATURES}
    assert list(got.content_known) == [True, False, True, True, True]
    columns = {name: i for i, name in enumerate(got.item_columns)}
    for row, cid in enumerate(ids):
        known = sdk["content_total_plays_7d"][row] is not None
        content = {n: sdk[n][row] for n, _ in f.CONTENT_FEATURES} if known else reader._matrix.rows[0]  # noqa: SLF001
        for name in CONTENT_NUMERIC:
            assert got.items[row, columns[name]] == float(content[name]), (cid, name)
        vector = [got.items[row, columns[f"content_genre_vector_{i}"]] for i in range(VOCAB.size)]
        assert vector == content["content_genre_vector"]
        want = cross_features(got.user, content)
        for name in CROSS_FEATURES:
            assert got.items[row, columns[name]] == pytest.approx(want[name], abs=1e-12), (cid, name)
    assert got.items[0, columns["user_watched_same_creator"]] == 0.0  # c000003: creator k0
    assert got.items[2, columns["user_watched_same_creator"]] == 1.0  # c000001: creator k1
    assert got.items[2, columns["user_has_watched_same_genre_7d"]] == 1.0  # crime, watched this week


def test_unknown_user_gets_defaults_with_a_flag(backend: tuple[Any, FeaturesConfig]) -> None:
    store, _ = backend
    reader = OnlineFeatureReader(store, vocab=VOCAB)
    reader.refresh(["c000001"])
    got = reader.read("u999999", ["c000001"])
    assert not got.user_known
    assert got.user["user_subscription_tier"] == f.UNKNOWN
    assert got.user["user_genre_affinity_vector"] == [0.0] * VOCAB.size
    assert list(got.items[0, -3:]) == [0.0, 0.0, 0.0]


def test_push_updates_the_store_and_the_matrix(backend: tuple[Any, FeaturesConfig]) -> None:
    store, _ = backend
    reader = OnlineFeatureReader(store, vocab=VOCAB)
    reader.refresh([f"c{i:06d}" for i in range(12)])
    _, contents = _tables()
    row = contents.loc[contents["content_id"].eq("c000002")].copy()
    row["content_total_plays_7d"] = 999
    row["event_timestamp"] = pd.Timestamp(NOW - timedelta(minutes=1))
    new = row.copy()
    new["content_id"] = "c000500"
    reader.push_content(pd.concat([row, new], ignore_index=True))
    got = reader.read("u000001", ["c000002", "c000500"])
    assert list(got.items[:, 0]) == [999.0, 999.0] and list(got.content_known) == [True, True]
    sdk = store.get_online_features(
        features=[f"{CONTENT_VIEW}:content_total_plays_7d"], entity_rows=[{"content_id": "c000002"}]
    )
    assert sdk.to_dict()["content_total_plays_7d"] == [999]


def test_refresh_follows_materialization_and_freshness_is_reported(tmp_path: Path) -> None:
    store, cfg = _store(tmp_path)
    reader = OnlineFeatureReader(store, vocab=VOCAB)
    reader.refresh(["c000001"])
    assert not reader.refresh_if_materialized(["c000001", "c000002"])
    materialize(store, NOW - timedelta(days=1), NOW + timedelta(seconds=1))
    assert reader.refresh_if_materialized(["c000001", "c000002"])
    assert reader.content_count == 2
    report = {r.view: r for r in view_freshness(store, cfg, NOW)}
    assert set(report) == {USER_VIEW, CONTENT_VIEW}
    assert report[USER_VIEW].age_seconds == pytest.approx(3 * 3600)
    assert not report[USER_VIEW].stale
    assert report[CONTENT_VIEW].materialized_until is not None


def test_pushing_list_features_twice_reads_both_back_offline(tmp_path: Path) -> None:
    """push_content writes offline too: two pushes of a title (list-valued genre columns included)
    are both read back as of their times by the point-in-time join the skew job uses."""
    from flywheel.features.store import offline_paths

    store, _ = _store(tmp_path)
    reader = OnlineFeatureReader(store, vocab=VOCAB)
    reader.refresh(["c000002"])
    _, contents = _tables()
    for minutes_ago, plays, genres in ((20, 500, ["drama"]), (10, 700, ["crime", "opera"])):
        row = contents.loc[contents["content_id"].eq("c000002")].copy()
        row["content_total_plays_7d"] = plays
        row["content_genre_tags"] = [genres]
        row["content_genre_vector"] = [f.genre_multi_hot(genres, VOCAB)]
        row["event_timestamp"] = pd.Timestamp(NOW - timedelta(minutes=minutes_ago))
        reader.push_content(row)
    entity_df = pd.DataFrame(
        {
            "content_id": ["c000002"] * 3,
            "event_timestamp": [pd.Timestamp(NOW - timedelta(minutes=m)) for m in (60, 15, 5)],
        }
    )
    with offline_paths(store):
        offline = store.get_historical_features(
            entity_df=entity_df,
            features=[f"{CONTENT_VIEW}:content_total_plays_7d", f"{CONTENT_VIEW}:content_genre_tags"],
        ).to_df()
    offline = offline.sort_values("event_timestamp").reset_index(drop=True)
    assert list(offline["content_total_plays_7d"]) == [20, 500, 700]  # before, after the 1st, after the 2nd
    original = list(contents.loc[contents["content_id"].eq("c000002"), "content_genre_tags"].iloc[0])
    assert [list(v) for v in offline["content_genre_tags"]] == [original, ["drama"], ["crime", "opera"]]
