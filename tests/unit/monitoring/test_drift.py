"""Drift decisions: PSI as Evidently computes it, shares, insufficient data, targets, quality."""

import math

import numpy as np
import pandas as pd
import pytest

from flywheel.monitoring.drift import (
    ColumnDrift,
    combined_status,
    exported_value,
    feature_drift,
    feedback_closed,
    prediction_drift,
    psi,
    report_threshold,
    target_drift,
    window_quality,
)
from flywheel.monitoring.windows import Window, WindowError, duration_ms, parse_window


def _frames(n: int = 2000, shift: float = 0.0, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame({f"x{i}": rng.normal(size=n) for i in range(4)} | {"device": rng.choice(["tv", "web"], n)})
    cur = pd.DataFrame({f"x{i}": rng.normal(size=n) for i in range(4)} | {"device": rng.choice(["tv", "web"], n)})
    cur["x0"] += shift
    cur["x1"] += shift
    return ref, cur


def test_psi_of_categories_is_the_textbook_value() -> None:
    ref = pd.Series(["a"] * 50 + ["b"] * 50)
    cur = pd.Series(["a"] * 80 + ["b"] * 20)
    expected = (0.5 - 0.8) * math.log(0.5 / 0.8) + (0.5 - 0.2) * math.log(0.5 / 0.2)
    assert psi(ref, cur) == pytest.approx(expected, rel=1e-12)


def test_psi_floors_an_empty_bin_as_evidently_does() -> None:
    ref = pd.Series(["a"] * 100)
    cur = pd.Series(["a"] * 50 + ["b"] * 50)
    expected = (1.0 - 0.5) * math.log(1.0 / 0.5) + (1e-4 - 0.5) * math.log(1e-4 / 0.5)
    assert psi(ref, cur) == pytest.approx(expected, rel=1e-12)


def test_psi_equals_evidentlys_psi_on_numeric_and_categorical_columns() -> None:
    from evidently import Report
    from evidently.metrics import ValueDrift

    ref, cur = _frames(shift=0.3)
    snapshot = Report([ValueDrift(column=c, method="psi") for c in ("x0", "x2", "device")]).run(
        current_data=cur, reference_data=ref
    )
    theirs = [float(m["value"]) for m in snapshot.dict()["metrics"]]
    ours = [psi(ref[c], cur[c]) for c in ("x0", "x2", "device")]
    assert ours == pytest.approx(theirs, rel=1e-9)


def test_two_of_five_shifted_columns_make_a_40_percent_share() -> None:
    ref, cur = _frames(shift=1.0)
    result = feature_drift(ref, cur, list(ref.columns), psi_threshold=0.2, max_drift_share=0.3, min_rows=100)
    assert result.drifted_columns == ["x0", "x1"]
    assert result.share == pytest.approx(0.4)
    assert result.status == "drift"


def test_the_same_distribution_is_not_drift() -> None:
    ref, cur = _frames(shift=0.0)
    result = feature_drift(ref, cur, list(ref.columns), psi_threshold=0.2, max_drift_share=0.3, min_rows=100)
    assert result.status == "ok"
    assert result.share == 0.0


@pytest.mark.parametrize("rows", [0, 1, 99])
def test_an_empty_or_small_window_is_insufficient_data_not_drift(rows: int) -> None:
    ref, cur = _frames(shift=5.0)
    result = feature_drift(ref, cur.head(rows), list(ref.columns), psi_threshold=0.2, max_drift_share=0.3, min_rows=100)
    assert result.status == "insufficient_data"
    assert math.isnan(result.share)


def test_a_column_missing_on_one_side_is_left_out_of_the_share() -> None:
    ref, cur = _frames(shift=1.0)
    cur["x3"] = np.nan
    result = feature_drift(ref, cur, list(ref.columns), psi_threshold=0.2, max_drift_share=0.3, min_rows=100)
    assert [c.column for c in result.columns] == ["x0", "x1", "x2", "device"]
    assert result.share == pytest.approx(0.5)


def test_prediction_drift_and_its_minimum() -> None:
    rng = np.random.default_rng(1)
    ref = pd.Series(rng.beta(2, 5, 3000))
    assert prediction_drift(ref, pd.Series(rng.beta(5, 2, 3000)), psi_threshold=0.2, min_rows=100).status == "drift"
    assert prediction_drift(ref, pd.Series(rng.beta(2, 5, 3000)), psi_threshold=0.2, min_rows=100).status == "ok"
    assert prediction_drift(ref, pd.Series([0.5] * 10), psi_threshold=0.2, min_rows=100).status == "insufficient_data"


def test_target_drift_by_relative_change_and_without_feedback() -> None:
    drifts = target_drift(
        {"click": 0.10, "watch_50": 0.05},
        {"click": 70, "watch_50": 52},
        1000,
        max_relative_change=0.25,
        min_impressions=500,
    )
    click, watch = drifts
    assert (click.status, click.relative_change) == ("drift", pytest.approx(-0.3))
    assert (watch.status, watch.current_rate) == ("ok", pytest.approx(0.052))
    early = target_drift({"click": 0.1}, {"click": 5}, 40, max_relative_change=0.25, min_impressions=500)
    assert early[0].status == "insufficient_data"


def test_window_quality_flags_volume_staleness_nulls_and_ranges() -> None:
    frame = pd.DataFrame({"timestamp_ms": [0, 60_000, 120_000], "rate": [0.5, 1.5, np.nan], "hours": [1.0, 2.0, 3.0]})
    findings = {
        f.check: f
        for f in window_quality(
            frame,
            window_hours=1.0,
            window_end_ms=3_600_000,
            timestamp_column="timestamp_ms",
            columns=["rate", "hours"],
            ranges={"rate": (0.0, 1.0), "hours": (0.0, None)},
            reference_rows_per_hour=100.0,
            max_null_rate=0.05,
            max_staleness_minutes=30,
            min_volume_ratio=0.2,
        )
    }
    assert findings["volume"].value == pytest.approx(0.03) and not findings["volume"].passed
    assert findings["freshness"].value == pytest.approx(58.0) and not findings["freshness"].passed
    assert findings["nulls"].value == pytest.approx(1 / 3) and not findings["nulls"].passed
    assert findings["out_of_range"].value == 1.0 and not findings["out_of_range"].passed


def test_window_specifications() -> None:
    assert duration_ms("15m") == 900_000
    assert parse_window("1h", now_ms=7_200_000) == Window(3_600_000, 7_200_000)
    window = parse_window("2026-01-05T00:00/2026-01-05T02:00", now_ms=0)
    assert window.hours == 2.0
    assert window.label == "20260105T000000-20260105T020000"
    for bad in ("soon", "0h", "2026-01-05/2026-01-04"):
        with pytest.raises(WindowError):
            parse_window(bad, now_ms=0)


def test_a_window_drifts_when_any_check_drifts_and_is_undecided_only_by_its_features() -> None:
    assert combined_status("ok", "drift") == "drift"
    assert combined_status("insufficient_data", None, ["ok", "drift"]) == "drift"
    assert combined_status("insufficient_data", "ok", ["ok"]) == "insufficient_data"
    assert combined_status("ok", "insufficient_data", ["insufficient_data"]) == "ok"


def test_an_undecided_check_exports_zero() -> None:
    assert exported_value("insufficient_data", 0.7) == 0.0
    assert exported_value("drift", math.nan) == 0.0
    assert exported_value("drift", 0.7) == 0.7


def test_the_report_threshold_flags_exactly_the_decided_columns() -> None:
    columns = [ColumnDrift("a", 0.35, True, 0.0), ColumnDrift("b", 0.25, True, 0.0), ColumnDrift("c", 0.1, False, 0.0)]
    assert report_threshold(columns) == 0.25
    assert report_threshold(columns[2:]) == pytest.approx(0.1 + 1e-9)
    assert report_threshold([]) == 0.1


def test_only_impressions_whose_feedback_window_closed_count() -> None:
    closed = feedback_closed(pd.Series([0, 40, 50, 51]), newest_ms=80, label_window_ms=30)
    assert closed.tolist() == [True, True, True, False]
