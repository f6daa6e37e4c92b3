"""Drift decisions over two frames: per-feature drift and the drifted share, prediction (score)
drift and target drift, each with an explicit ``insufficient_data`` outcome.

The statistic is the population stability index with Evidently's binning (its ``psi`` test:
numeric columns with more than 20 distinct reference values get Sturges bins over both samples,
other columns one bin per value; empty bins get a small floor), computed here with numpy so that
a window of 100k rows x 30 columns is decided in well under a second. Evidently renders the same
test in the HTML report of a window (monitoring/drift_job.py); a unit test checks that both give
the same value.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd

Status = Literal["drift", "ok", "insufficient_data"]
#: Targets watched once feedback has arrived: label column of the reference -> metric name.
TARGETS: dict[str, str] = {"click": "ctr", "watch_50": "watch_50_rate"}
_DISTINCT_FOR_BINS = 20


def _floor_zeros(shares: np.ndarray) -> np.ndarray:
    """Evidently's floor for empty bins: min/1e6 when the smallest share is <= 1e-4, else 1e-4."""
    nonzero = shares[shares != 0]
    if nonzero.size == 0:
        return np.full_like(shares, 1e-4)
    smallest = float(nonzero.min())
    return np.where(shares == 0, smallest / 1e6 if smallest <= 1e-4 else 1e-4, shares)


def psi(reference: pd.Series, current: pd.Series) -> float:
    """Population stability index of ``current`` against ``reference`` (missing values dropped).

    Numeric columns with more than 20 distinct reference values are binned by Sturges' rule over
    both samples; any other column has one bin per value. Both sides must have values.
    """
    ref, cur = reference.dropna(), current.dropna()
    if ref.empty or cur.empty:
        raise ValueError("psi needs values on both sides")
    numeric = pd.api.types.is_numeric_dtype(ref) and pd.api.types.is_numeric_dtype(cur)
    if numeric and not pd.api.types.is_bool_dtype(ref) and ref.nunique() > _DISTINCT_FOR_BINS:
        r, c = ref.to_numpy(dtype=np.float64), cur.to_numpy(dtype=np.float64)
        edges = np.histogram_bin_edges(np.concatenate([r, c]), bins="sturges")
        ref_share = np.histogram(r, edges)[0] / r.size
        cur_share = np.histogram(c, edges)[0] / c.size
    else:
        ref_counts, cur_counts = ref.value_counts(), cur.value_counts()
        keys = ref_counts.index.union(cur_counts.index)
        ref_share = ref_counts.reindex(keys, fill_value=0).to_numpy(dtype=np.float64) / len(ref)
        cur_share = cur_counts.reindex(keys, fill_value=0).to_numpy(dtype=np.float64) / len(cur)
    ref_share, cur_share = _floor_zeros(ref_share), _floor_zeros(cur_share)
    return float(np.sum((ref_share - cur_share) * np.log(ref_share / cur_share)))


@dataclass(frozen=True, slots=True)
class ColumnDrift:
    """One column's drift."""

    column: str
    psi: float
    drifted: bool
    seconds: float
    """Time the test took (the benchmark prints it)."""


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """Per-feature drift of a window and the share of drifted features."""

    status: Status
    share: float
    """Share of the compared columns that drifted (NaN when insufficient data)."""
    columns: tuple[ColumnDrift, ...]
    rows: int
    reference_rows: int
    detail: str

    @property
    def drifted_columns(self) -> list[str]:
        """Names of the drifted columns."""
        return [c.column for c in self.columns if c.drifted]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {**asdict(self), "drifted_columns": self.drifted_columns}


def feature_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str],
    *,
    psi_threshold: float,
    max_drift_share: float,
    min_rows: int,
) -> FeatureDrift:
    """Compare every shared column of ``columns``; the window drifted when the drifted share reaches
    ``max_drift_share``. Fewer than ``min_rows`` rows on either side, or no column to compare, is
    ``insufficient_data``. A column that is all missing on one side is left out (data quality reports it).
    """
    present = [c for c in columns if c in current.columns and c in reference.columns]
    rows, ref_rows = len(current), len(reference)
    if rows < min_rows or ref_rows < min_rows:
        detail = f"{rows} rows in the window, {ref_rows} in the reference (need {min_rows} each)"
        return FeatureDrift("insufficient_data", math.nan, (), rows, ref_rows, detail)
    results = []
    for col in present:
        if current[col].notna().sum() == 0 or reference[col].notna().sum() == 0:
            continue
        t0 = time.perf_counter()
        value = psi(reference[col], current[col])
        results.append(ColumnDrift(col, value, value >= psi_threshold, time.perf_counter() - t0))
    if not results:
        return FeatureDrift("insufficient_data", math.nan, (), rows, ref_rows, "no column to compare")
    drifted = sum(c.drifted for c in results)
    share = drifted / len(results)
    status: Status = "drift" if share >= max_drift_share else "ok"
    detail = f"{drifted} of {len(results)} features drifted ({share:.0%}; alert at {max_drift_share:.0%})"
    return FeatureDrift(status, share, tuple(results), rows, ref_rows, detail)


@dataclass(frozen=True, slots=True)
class ScoreDrift:
    """Drift of the served scores against the reference scores."""

    status: Status
    psi: float
    rows: int
    detail: str


def prediction_drift(reference: pd.Series, current: pd.Series, *, psi_threshold: float, min_rows: int) -> ScoreDrift:
    """PSI of the served scores against the reference's; ``insufficient_data`` below ``min_rows``."""
    ref, cur = reference.dropna(), current.dropna()
    if len(cur) < min_rows or len(ref) < min_rows:
        detail = f"{len(cur)} scores in the window, {len(ref)} in the reference (need {min_rows} each)"
        return ScoreDrift("insufficient_data", math.nan, len(cur), detail)
    value = psi(ref, cur)
    status: Status = "drift" if value >= psi_threshold else "ok"
    return ScoreDrift(status, value, len(cur), f"score PSI {value:.3f} (alert at {psi_threshold})")


@dataclass(frozen=True, slots=True)
class TargetDrift:
    """A target rate (CTR, watch > 50%) in the window against the reference."""

    target: str
    status: Status
    reference_rate: float
    current_rate: float
    relative_change: float
    impressions: int
    detail: str


def target_drift(
    reference_rates: Mapping[str, float],
    positives: Mapping[str, int],
    impressions: int,
    *,
    max_relative_change: float,
    min_impressions: int,
) -> tuple[TargetDrift, ...]:
    """Each target's rate ``positives[t] / impressions`` against ``reference_rates[t]``.

    A target drifted when ``|current / reference - 1| > max_relative_change``; with fewer than
    ``min_impressions`` impressions (feedback not arrived yet) it is ``insufficient_data``.
    """
    out = []
    for target, ref_rate in reference_rates.items():
        if impressions < min_impressions or target not in positives:
            detail = f"{impressions} impressions with feedback (need {min_impressions})"
            out.append(TargetDrift(target, "insufficient_data", ref_rate, math.nan, math.nan, impressions, detail))
            continue
        rate = positives[target] / impressions
        change = rate / ref_rate - 1.0 if ref_rate > 0 else (math.inf if rate > 0 else 0.0)
        status: Status = "drift" if abs(change) > max_relative_change else "ok"
        detail = (
            f"{target} {rate:.4f} vs reference {ref_rate:.4f} ({change:+.0%}; alert beyond {max_relative_change:.0%})"
        )
        out.append(TargetDrift(target, status, ref_rate, rate, change, impressions, detail))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class QualityFinding:
    """One data-quality measurement of a window."""

    check: str
    """volume | freshness | nulls | out_of_range."""
    passed: bool
    value: float
    detail: str


def window_quality(
    frame: pd.DataFrame,
    *,
    window_hours: float,
    window_end_ms: int,
    timestamp_column: str,
    columns: Sequence[str],
    ranges: Mapping[str, tuple[float | None, float | None]],
    reference_rows_per_hour: float | None,
    max_null_rate: float,
    max_staleness_minutes: float,
    min_volume_ratio: float,
) -> tuple[QualityFinding, ...]:
    """Volume (rows per hour against the reference rate), freshness (newest record against the
    window end), the worst null rate and the values out of their closed ranges."""
    findings = []
    rate = len(frame) / window_hours if window_hours > 0 else 0.0
    if reference_rows_per_hour and min_volume_ratio > 0:
        ratio = rate / reference_rows_per_hour
        findings.append(
            QualityFinding(
                "volume", ratio >= min_volume_ratio, ratio, f"{rate:.0f} rows/h = {ratio:.2f} x reference rate"
            )
        )
    else:
        findings.append(QualityFinding("volume", len(frame) > 0, float(rate), f"{rate:.0f} rows/h"))
    if len(frame) and timestamp_column in frame.columns:
        lag_min = (window_end_ms - float(frame[timestamp_column].max())) / 60_000
        findings.append(
            QualityFinding(
                "freshness",
                lag_min <= max_staleness_minutes,
                lag_min,
                f"newest record {lag_min:.1f} min before the window end (max {max_staleness_minutes:g})",
            )
        )
    else:
        findings.append(QualityFinding("freshness", False, math.inf, "no records in the window"))
    present = [c for c in columns if c in frame.columns]
    if len(frame) and present:
        nulls = frame[present].isna().mean()
        worst = str(nulls.idxmax())
        findings.append(
            QualityFinding(
                "nulls",
                float(nulls.max()) <= max_null_rate,
                float(nulls.max()),
                f"worst null rate {nulls.max():.2%} ({worst}; max {max_null_rate:.0%})",
            )
        )
    out_of_range = 0
    named = []
    for col, (lo, hi) in ranges.items():
        if col not in frame.columns or not pd.api.types.is_numeric_dtype(frame[col]):
            continue
        values = frame[col].dropna().to_numpy(dtype=np.float64)
        low = -np.inf if lo is None else lo
        high = np.inf if hi is None else hi
        bad = int(((values < low) | (values > high)).sum())
        if bad:
            out_of_range += bad
            named.append(f"{col} {bad}")
    detail = "values out of range: " + (", ".join(named) if named else "none")
    findings.append(QualityFinding("out_of_range", out_of_range == 0, float(out_of_range), detail))
    return tuple(findings)


def combined_status(features: Status, scores: Status | None = None, targets: Sequence[Status] = ()) -> Status:
    """A window's status over its checks: ``drift`` when features, scores or a target drifted;
    else ``insufficient_data`` when the features could not be decided; else ``ok``."""
    if "drift" in (features, scores, *targets):
        return "drift"
    return "insufficient_data" if features == "insufficient_data" else "ok"


def exported_value(status: Status, value: float) -> float:
    """The value a gauge shows: an undecided check reports no drift (0), never a stale or alarming value."""
    return 0.0 if status == "insufficient_data" or not math.isfinite(value) else value


def report_threshold(columns: Sequence[ColumnDrift]) -> float:
    """The PSI threshold that makes the Evidently report flag exactly the columns decided here: the
    smallest drifted PSI, else just above the largest kept one (0.1 when there is no column)."""
    drifted = [c.psi for c in columns if c.drifted]
    kept = [c.psi for c in columns if not c.drifted]
    return min(drifted) if drifted else (max(kept) + 1e-9 if kept else 0.1)


def feedback_closed(timestamps_ms: pd.Series, newest_ms: int, label_window_ms: int) -> pd.Series:
    """Mask of the impressions whose feedback window has closed inside the data seen (up to ``newest_ms``)."""
    return timestamps_ms <= newest_ms - label_window_ms
