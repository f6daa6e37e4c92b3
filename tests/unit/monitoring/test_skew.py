"""Training-serving skew: tolerance, missing offline values, shares."""

import numpy as np
import pandas as pd
import pytest

from flywheel.monitoring.skew import compare_features


def _joined(n: int = 100) -> pd.DataFrame:
    values = np.linspace(1.0, 2.0, n)
    return pd.DataFrame(
        {
            "a_served": values,
            "a_offline": values * 1.001,  # within 1% relative tolerance
            "b_served": values,
            "b_offline": np.where(np.arange(n) < 10, values + 1.0, values),  # 10% disagree
        }
    )


def test_values_within_tolerance_agree_and_a_tenth_disagreeing_is_skew() -> None:
    report = compare_features(
        _joined(), ["a", "b"], abs_tolerance=1e-6, rel_tolerance=0.01, max_skew_share=0.05, min_rows=50
    )
    by_name = {f.feature: f for f in report.features}
    assert by_name["a"].mismatches == 0
    assert by_name["b"].mismatches == 10
    assert by_name["b"].max_abs_difference == pytest.approx(1.0)
    assert report.status == "skew"
    assert report.share == 0.5
    assert report.skewed(0.05) == ["b"]


def test_rows_without_an_offline_value_are_not_compared() -> None:
    joined = _joined()
    joined.loc[:9, "b_offline"] = np.nan
    report = compare_features(joined, ["b"], abs_tolerance=1e-6, rel_tolerance=0.01, max_skew_share=0.05, min_rows=50)
    assert report.features[0].compared == 90
    assert report.status == "ok"


def test_too_few_rows_is_insufficient_data() -> None:
    report = compare_features(
        _joined(10), ["a", "b"], abs_tolerance=1e-6, rel_tolerance=0.01, max_skew_share=0.05, min_rows=50
    )
    assert report.status == "insufficient_data"
