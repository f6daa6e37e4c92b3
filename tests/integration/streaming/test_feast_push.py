"""The dataflow pushes its features to Feast: online values and offline (point-in-time) rows."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from bytewax.testing import run_main

from flywheel.config.features import FeaturesConfig
from flywheel.config.streaming import StreamingConfig
from flywheel.features.store import apply_repo, offline_paths, open_store
from streaming.dataflow import CONTENT_VIEW, USER_VIEW, build_flow
from streaming.feast_sink import FeastPushSink
from streaming.settings import feature_context, settings_from_config
from streaming.sinks import read_feature_table
from tests.integration.streaming.helpers import REPO, simulate_day, write_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USER_COLUMNS = [
    "user_total_watch_hours_7d",
    "user_skip_rate_7d",
    "user_avg_session_length_30d",
    "user_subscription_tier",
]


def _close(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def test_features_reach_the_online_and_offline_stores(tmp_path: Path) -> None:
    config, summary = simulate_day(write_config(tmp_path, users=100), ground_truth=True)
    gt = Path(config.simulator.ground_truth_dir)
    features = FeaturesConfig(
        repo_path=REPO / "feature_repo",
        data_dir=tmp_path / "features",
        catalog_path=gt / "catalog.parquet",
        users_path=gt / "users.parquet",
    )
    store = open_store(features)
    apply_repo(store, features.repo_path)
    streaming = StreamingConfig(
        recovery=False,
        emit_interval_seconds=0.2,
        report_path=tmp_path / "report.json",
        features_table=tmp_path / "features.sqlite",
    )
    as_of = summary.end_ms + 1
    settings = settings_from_config(
        config,
        streaming=streaming,
        context=feature_context(features, streaming),
        as_of_end_ms=as_of,
        feature_sinks=(FeastPushSink(features),),
    )
    run_main(build_flow(settings))
    table = read_feature_table(tmp_path / "features.sqlite")
    users = sorted(entity for view, entity in table if view == USER_VIEW)
    contents = sorted(entity for view, entity in table if view == CONTENT_VIEW)
    assert len(users) > 50 and len(contents) > 50

    store = open_store(features)
    online = store.get_online_features(
        features=[f"user_features:{name}" for name in USER_COLUMNS], entity_rows=[{"user_id": u} for u in users]
    ).to_dict()
    for i, user in enumerate(users):
        for name in USER_COLUMNS:
            assert _close(online[name][i], table[(USER_VIEW, user)][name]), (user, name)
    plays = store.get_online_features(
        features=["content_features:content_total_plays_7d"], entity_rows=[{"content_id": c} for c in contents]
    ).to_dict()["content_total_plays_7d"]
    assert plays == [table[(CONTENT_VIEW, c)]["content_total_plays_7d"] for c in contents]

    entity_df = pd.DataFrame({"user_id": users, "event_timestamp": pd.Timestamp(as_of + 1, unit="ms", tz="UTC")})
    with offline_paths(store):
        offline = store.get_historical_features(
            entity_df=entity_df, features=[f"user_features:{name}" for name in USER_COLUMNS]
        ).to_df()
    by_user = offline.set_index("user_id")
    for user in users:
        for name in USER_COLUMNS:
            assert _close(by_user.loc[user, name], table[(USER_VIEW, user)][name]), (user, name)
