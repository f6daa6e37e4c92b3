"""The drift job on a real local event log: simulated drift is found, reported and exported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flywheel.events.log import open_event_log
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
