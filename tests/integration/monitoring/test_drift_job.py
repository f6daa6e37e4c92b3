"""The drift job on a real local event log: simulated drift is found, reported and exported."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flywheel.config.models import FlywheelConfig
from flywheel.events.log import open_event_log
from flywheel.features.store import CONTENT_VIEW, USER_VIEW, offline_path
from flywheel.models.contract import USER_DENSE
from monitoring import metrics
from monitoring.drift_job import Reference, run_drift
from tests.integration.monitoring.conftest import DAY_MS, DriftedWorld

pytestmark = pytest.mark.integration


def _gauge(name: str, **labels: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, labels)


def test_the_shifted_day_drifts_against_the_training_days(drifted_world: DriftedWorld) -> None:
    catalog = pd.read_parquet(Path(drifted_world.config.simulator.ground_truth_dir) / "catalog.parquet")
    reference = Reference(
        version="1", window_start_ms=drifted_world.start_ms, window_end_ms=drifted_world.start_ms + 2 * DAY_MS
    )
    run = run_drift(drifted_world.config, window_spec="1d", reference=reference, catalog=catalog)
    (events,) = run.results
    assert events.source == "events"
    assert events.status == "drift"
    assert "device_type" in events.features.drifted_columns
    assert _gauge("flywheel_drift_share", source="events") == pytest.approx(events.features.share)
    assert _gauge("flywheel_feature_drift_score", source="events", feature="device_type") > 0.2
    report = json.loads((Path(events.report_dir) / "drift.json").read_text())
    assert report["status"] == "drift"
    assert (Path(events.report_dir) / "drift.html").stat().st_size > 10_000


def test_a_window_before_the_shift_does_not_drift(drifted_world: DriftedWorld) -> None:
    start = drifted_world.start_ms
    reference = Reference(version="1", window_start_ms=start, window_end_ms=start + DAY_MS)
    day1, day2 = (pd.Timestamp(start + n * DAY_MS, unit="ms").isoformat() for n in (1, 2))
    spec = f"{day1}/{day2}"
    (events,) = run_drift(drifted_world.config, window_spec=spec, reference=reference, reports=False).results
    assert events.features.status == "ok"


def test_an_empty_window_is_insufficient_data_and_exports_no_drift(drifted_world: DriftedWorld) -> None:
    start = drifted_world.start_ms
    reference = Reference(version="1", window_start_ms=start, window_end_ms=start + DAY_MS)
    spec = "2020-01-01T00:00/2020-01-01T01:00"
    (events,) = run_drift(drifted_world.config, window_spec=spec, reference=reference, reports=False).results
    assert (events.rows, events.status) == (0, "insufficient_data")
    assert _gauge("flywheel_monitor_insufficient_data", source="events") == 1.0
    assert _gauge("flywheel_drift_share", source="events") == 0.0


def _prediction(ts: int, rng: np.random.Generator, shift: float, version: str = "1") -> bytes:
    features = {name: float(rng.gamma(2.0, 1.0) + shift) for name in USER_DENSE}
    features["device_type"] = "tv"
    scores = sorted((rng.beta(2, 5, 10) + shift / 10).tolist(), reverse=True)
    record = {
        "request_id": f"r{ts}",
        "timestamp_ms": ts,
        "user_id": f"u{ts % 97}",
        "model_name": "flywheel-recommender",
        "model_version": version,
        "variant": "champion",
        "rollout_id": None,
        "features": features,
        "items": [f"c{i}" for i in range(10)],
        "scores": scores,
        "latency_ms": 3.0,
        "error": None,
    }
    return json.dumps(record).encode()


def test_prediction_log_features_and_scores_drift(drifted_world: DriftedWorld, tmp_path: Path) -> None:
    raw = drifted_world.config.model_dump()
    raw["event_log"]["local"]["path"] = str(tmp_path / "log")
    config = type(drifted_world.config).model_validate(raw)
    rng = np.random.default_rng(0)
    log = open_event_log(config.event_log)
    producer = log.producer(config.event_log.topics.predictions)
    hour = 3_600_000
    for i in range(600):  # an hour as trained, then an hour shifted
        producer.send(None, _prediction(i * hour // 300, rng, 0.0 if i < 300 else 3.0))
    producer.flush()
    log.close()
    sample = pd.DataFrame({name: rng.gamma(2.0, 1.0, 2000) for name in USER_DENSE})
    run = run_drift(config, window_spec="1h", reference=Reference(version="1", sample=sample), reports=False)
    (preds,) = run.results
    assert preds.source == "predictions"
    assert preds.features.status == "drift"
    assert set(preds.features.drifted_columns) == set(USER_DENSE)
    assert preds.scores is not None and preds.scores.status == "drift"
    assert _gauge("flywheel_prediction_drift_score") == pytest.approx(preds.scores.psi)


def _own_log(world: DriftedWorld, tmp_path: Path) -> FlywheelConfig:
    raw = world.config.model_dump()
    raw["event_log"]["local"]["path"] = str(tmp_path / "log")
    raw["features"]["data_dir"] = str(tmp_path / "features")
    return FlywheelConfig.model_validate(raw)


def test_each_source_is_windowed_on_its_own_clock(drifted_world: DriftedWorld, tmp_path: Path) -> None:
    """The loop's case: events on the simulated clock, predictions on the server's wall clock, the
    scores compared with an earlier serving phase on that same clock."""
    config = _own_log(drifted_world, tmp_path)
    rng = np.random.default_rng(1)
    log = open_event_log(config.event_log)
    producer = log.producer(config.event_log.topics.predictions)
    live = 1_796_256_000_000  # December 2026; the simulated days are months earlier
    for i in range(300):  # phase 1 as trained; a pause (the stream catching up); phase 2 shifted
        producer.send(None, _prediction(live + i * 100, rng, 0.0))
    for i in range(300):
        producer.send(None, _prediction(live + 120_000 + i * 100, rng, 3.0))
    producer.flush()
    log.close()
    sample = pd.DataFrame({name: rng.gamma(2.0, 1.0, 2000) for name in USER_DENSE})
    reference = Reference(version="1", sample=sample)

    def iso(ms: int) -> str:
        return pd.Timestamp(ms, unit="ms").isoformat()

    simulated_days = f"{iso(drifted_world.start_ms)}/{iso(drifted_world.end_ms)}"

    # a window on the simulated clock finds no prediction: undecided, never drift
    (stale,) = run_drift(config, window_spec=simulated_days, reference=reference, reports=False).results
    assert (stale.rows, stale.status) == (0, "insufficient_data")

    run = run_drift(
        config,
        window_spec=simulated_days,
        prediction_window=f"{iso(live + 120_000)}/{iso(live + 150_000)}",
        prediction_baseline=f"{iso(live)}/{iso(live + 30_000)}",
        reference=reference,
        reports=False,
    )
    (preds,) = run.results
    assert preds.rows == 300
    assert preds.baseline is not None and preds.baseline.start_ms == live
    assert preds.features.status == "drift"
    assert preds.scores is not None and preds.scores.status == "drift" and preds.scores.rows == 3000
    # the default baseline (the 30 s before the window) holds the pause only: the scores are undecided
    (alone,) = run_drift(config, window_spec="30s", reference=reference, reports=False).results
    assert alone.rows == 300 and alone.scores is not None and alone.scores.status == "insufficient_data"


def test_the_drift_job_sets_each_feature_views_freshness(drifted_world: DriftedWorld, tmp_path: Path) -> None:
    config = _own_log(drifted_world, tmp_path)
    newest = pd.Timestamp("2026-01-07T06:00", tz="UTC")
    path = offline_path(config.features, USER_VIEW)
    path.parent.mkdir(parents=True)
    pd.DataFrame({"user_id": ["u1", "u2"], "event_timestamp": [newest - pd.Timedelta(hours=5), newest]}).to_parquet(
        path
    )
    now = datetime(2026, 1, 8, 18, 0, tzinfo=UTC)
    run = run_drift(config, window_spec="1h", reference=Reference(version="1"), reports=False, now=now)
    ages = {f.view: f.age_seconds for f in run.freshness}
    assert ages == {USER_VIEW: 36 * 3600.0, CONTENT_VIEW: None}
    assert _gauge("flywheel_feature_freshness_seconds", view=USER_VIEW) == 36 * 3600.0
    assert _gauge("flywheel_feature_freshness_seconds", view=CONTENT_VIEW) == math.inf
