"""Data-quality checks: exact outcomes on small frames, and the gate on a corrupted window."""

import numpy as np
import pandas as pd
import pytest

from flywheel.config.simulator import SimulatorConfig
from flywheel.config.training import QualityConfig
from flywheel.quality.checks import (
    check_duplicates,
    check_freshness,
    check_null_rates,
    check_schema,
    check_value_ranges,
    check_volume,
    run_quality_gate,
)
from flywheel.simulator.frames import simulate_window


@pytest.fixture(scope="module")
def window() -> pd.DataFrame:
    return simulate_window(SimulatorConfig(users=40, items=30, days=2, seed=1)).frame


def test_volume_against_history() -> None:
    assert not check_volume(5, [], min_rows=10, min_ratio=0.5, max_ratio=2).passed
    ok = check_volume(100, [90, 100, 200], min_rows=10, min_ratio=0.5, max_ratio=2)
    assert ok.passed and ok.value == pytest.approx(1.0)
    low = check_volume(40, [90, 100, 200], min_rows=10, min_ratio=0.5, max_ratio=2)
    assert not low.passed and low.value == pytest.approx(0.4)


def test_freshness() -> None:
    end = pd.Timestamp("2026-11-10", tz="UTC")
    assert check_freshness(end - pd.Timedelta(hours=47), end, max_staleness_hours=48).passed
    stale = check_freshness(end - pd.Timedelta(hours=50), end, max_staleness_hours=48)
    assert not stale.passed and stale.value == pytest.approx(50.0)


def test_null_rates_name_the_column() -> None:
    frame = pd.DataFrame({"a": [1.0, None, 3.0, 4.0], "b": [1.0, 2.0, 3.0, 4.0]})
    check = check_null_rates(frame, ["a", "b"], max_rate=0.2)
    assert not check.passed and check.value == pytest.approx(0.25) and "a 25.0%" in check.detail


def test_null_rates_see_a_missing_feature_vector() -> None:
    frame = pd.DataFrame({"vector": [[0.1, 0.9], None, [0.5, 0.5], [1.0, 0.0], [0.0, 1.0]], "n": [1, 2, 3, 4, 5]})
    check = check_null_rates(frame, ["vector", "n"], max_rate=0.1)
    assert not check.passed and check.detail == "null rate above 10.0%: vector 20.0%"
    one_sided = check_value_ranges(frame, {"n": (2.0, None)})
    assert one_sided.detail == "n: 1 value(s) outside [2.0, None]"


def test_value_ranges_and_duplicates() -> None:
    frame = pd.DataFrame({"click": [0, 1, 2], "propensity": [0.5, 1.0, 0.0]})
    check = check_value_ranges(frame, {"click": (0.0, 1.0), "propensity": (1e-9, 1.0)})
    assert not check.passed
    assert check.detail == "click: 1 value(s) outside [0.0, 1.0]; propensity: 1 value(s) outside [1e-09, 1.0]"
    dup = pd.DataFrame({"k": [1, 1, 2, 3]})
    result = check_duplicates(dup, ["k"], max_rate=0.2)
    assert not result.passed and result.value == pytest.approx(0.25)


def test_schema_names_missing_feature(window: pd.DataFrame) -> None:
    check = check_schema(window.drop(columns=["user_skip_rate_7d"]))
    assert not check.passed and check.detail == "missing column(s): user_skip_rate_7d"


def test_clean_window_passes(window: pd.DataFrame) -> None:
    report = run_quality_gate(window, config=QualityConfig(min_rows=100), reference=None)
    assert report.passed, report.summary()


def test_corrupted_window_fails_with_every_reason(window: pd.DataFrame) -> None:
    bad = window.copy()
    bad.loc[bad.index[::5], "propensity"] = np.nan
    bad.loc[bad.index[::3], "click"] = 7
    bad = pd.concat([bad, bad.head(100)])
    report = run_quality_gate(bad, config=QualityConfig(min_rows=100), reference=None)
    assert not report.passed
    assert {c.name for c in report.failures} == {"null_rates", "value_ranges", "duplicates"}
    assert "propensity" in report.summary()


def test_empty_window_fails_on_volume(window: pd.DataFrame) -> None:
    report = run_quality_gate(window.iloc[:0], config=QualityConfig(), reference=None)
    assert [c.name for c in report.failures] == ["volume"]
    assert "0 rows" in report.summary()


def test_distribution_drift_against_reference(window: pd.DataFrame) -> None:
    shifted = window.copy()
    for col in (
        "user_total_watch_hours_7d",
        "content_total_plays_7d",
        "user_skip_rate_7d",
        "position",
        "content_avg_completion_rate",
        "content_play_to_impression_ratio",
    ):
        shifted[col] = shifted[col] * 5 + 3
    report = run_quality_gate(shifted, config=QualityConfig(min_rows=100, max_drift_share=0.3), reference=window)
    drift = next(c for c in report.checks if c.name == "distribution")
    assert not drift.passed and drift.value is not None and drift.value > 0.3


def _shifted(window: pd.DataFrame) -> pd.DataFrame:
    shifted = window.copy()
    for col in ("user_total_watch_hours_7d", "content_total_plays_7d", "position", "content_play_to_impression_ratio"):
        shifted[col] = shifted[col] * 5 + 3
    return shifted


def test_drift_stops_a_training_but_is_a_warning_in_a_retraining(window: pd.DataFrame) -> None:
    config = QualityConfig(min_rows=100, max_drift_share=0.2)
    training = run_quality_gate(_shifted(window), config=config, reference=window)
    retraining = run_quality_gate(_shifted(window), config=config, reference=window, purpose="retraining")
    assert [c.name for c in training.failures] == ["distribution"]
    assert retraining.passed
    assert [c.name for c in retraining.warnings] == ["distribution"]
    assert "WARNING distribution" in retraining.summary()
    blocking = run_quality_gate(
        _shifted(window),
        config=QualityConfig(min_rows=100, max_drift_share=0.2, retraining_drift="block"),
        reference=window,
        purpose="retraining",
    )
    assert [c.name for c in blocking.failures] == ["distribution"]


def test_broken_data_still_stops_a_retraining(window: pd.DataFrame) -> None:
    broken = _shifted(window)
    broken.loc[broken.index[:50], "user_skip_rate_7d"] = None
    report = run_quality_gate(
        broken, config=QualityConfig(min_rows=100, max_drift_share=0.2), reference=window, purpose="retraining"
    )
    assert [c.name for c in report.failures] == ["null_rates"]
