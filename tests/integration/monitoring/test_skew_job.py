"""The skew job against a real Feast offline store (duckdb): served user features that match the
store agree, a feature the server computed differently is reported as skewed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from flywheel.config import load_config
from flywheel.config.models import FlywheelConfig
from flywheel.models.contract import USER_DENSE
from monitoring import metrics
from monitoring.skew_job import run_skew
from tests.integration.features.test_online import NOW, _store, _tables

pytestmark = pytest.mark.integration


def _config(home: Path, features: object) -> FlywheelConfig:
    raw = load_config(env={"FLYWHEEL_HOME": str(home)}).model_dump(mode="json")
    raw["features"] = features.model_dump(mode="json")  # type: ignore[attr-defined]
    raw["monitoring"]["skew"]["min_rows"] = 5
    return FlywheelConfig.model_validate(raw)


def _records(users: object, *, skewed: str | None) -> list[dict]:
    row = users.iloc[0]  # type: ignore[attr-defined]
    at_ms = int((NOW - timedelta(minutes=30)).timestamp() * 1000)
    out = []
    for i in range(10):
        features = {name: float(row[name]) for name in USER_DENSE}
        if skewed is not None:
            features[skewed] += 1.0
        features["user_known"] = 1.0
        out.append(
            {
                "request_id": f"r{i}",
                "timestamp_ms": at_ms + i * 1000,
                "user_id": row["user_id"],
                "model_name": "flywheel-recommender",
                "model_version": "1",
                "variant": "champion",
                "rollout_id": None,
                "features": features,
                "items": ["c000001"],
                "scores": [0.5],
                "latency_ms": 2.0,
                "error": None,
            }
        )
    return out


def test_matching_features_agree_and_a_wrong_one_is_skew(tmp_path: Path) -> None:
    _, features = _store(tmp_path / "features")
    config = _config(tmp_path, features)
    users, _ = _tables()
    clean = run_skew(config, window_spec="1h", records=_records(users, skewed=None))
    assert clean.status == "ok"
    assert {f.feature for f in clean.features} == set(USER_DENSE)
    assert all(f.compared == 10 and f.mismatches == 0 for f in clean.features)
    skewed = run_skew(config, window_spec="1h", records=_records(users, skewed="user_skip_rate_7d"))
    assert skewed.status == "skew"
    assert skewed.skewed(config.monitoring.skew.max_skew_share) == ["user_skip_rate_7d"]
    assert metrics.REGISTRY.get_sample_value("flywheel_skew_share") == pytest.approx(1 / len(USER_DENSE))
