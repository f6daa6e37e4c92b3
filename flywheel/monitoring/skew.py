"""Training-serving skew: the features the server logged against the same features recomputed
offline for the same entity and time (the point-in-time join of the offline store)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd

Status = Literal["skew", "ok", "insufficient_data"]


@dataclass(frozen=True, slots=True)
class FeatureSkew:
    """One feature's disagreement between serving and the offline store."""

    feature: str
    compared: int
    mismatches: int
    max_abs_difference: float

    @property
    def mismatch_share(self) -> float:
        """Share of compared values that disagree."""
        return self.mismatches / self.compared if self.compared else math.nan


@dataclass(frozen=True, slots=True)
class SkewReport:
    """Skew of every compared feature, and the share of skewed features."""

    status: Status
    share: float
    """Share of the compared features whose mismatch share exceeds the limit."""
    features: tuple[FeatureSkew, ...]
    rows: int
    detail: str

    def skewed(self, max_skew_share: float) -> list[str]:
        """The features whose mismatch share exceeds ``max_skew_share``."""
        return [f.feature for f in self.features if f.mismatch_share > max_skew_share]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {**asdict(self), "features": [{**asdict(f), "mismatch_share": f.mismatch_share} for f in self.features]}


def values_agree(served: np.ndarray, offline: np.ndarray, *, abs_tolerance: float, rel_tolerance: float) -> np.ndarray:
    """Element-wise: equal within ``abs_tolerance`` or ``rel_tolerance`` x |offline|; two NaNs agree."""
    both_nan = np.isnan(served) & np.isnan(offline)
    diff = np.abs(served - offline)
    close = (diff <= abs_tolerance) | (diff <= rel_tolerance * np.abs(offline))
    return both_nan | np.nan_to_num(close, nan=False).astype(bool)


def compare_features(
    joined: pd.DataFrame,
    features: Sequence[str],
    *,
    served_suffix: str = "_served",
    offline_suffix: str = "_offline",
    abs_tolerance: float,
    rel_tolerance: float,
    max_skew_share: float,
    min_rows: int,
) -> SkewReport:
    """Compare ``<feature>_served`` with ``<feature>_offline`` on every row of ``joined``.

    Rows where the offline store has no value for the entity at that time are not compared
    (that is missing data, not skew). Fewer than ``min_rows`` rows: ``insufficient_data``.
    """
    if len(joined) < min_rows:
        return SkewReport("insufficient_data", math.nan, (), len(joined), f"{len(joined)} rows (need {min_rows})")
    results = []
    for name in features:
        served_col, offline_col = f"{name}{served_suffix}", f"{name}{offline_suffix}"
        if served_col not in joined.columns or offline_col not in joined.columns:
            continue
        served = pd.to_numeric(joined[served_col], errors="coerce").to_numpy(dtype=np.float64)
        offline = pd.to_numeric(joined[offline_col], errors="coerce").to_numpy(dtype=np.float64)
        known = ~np.isnan(offline)
        if not known.any():
            continue
        agree = values_agree(served[known], offline[known], abs_tolerance=abs_tolerance, rel_tolerance=rel_tolerance)
        diff = np.abs(served[known] - offline[known])
        worst = float(np.nanmax(diff)) if np.isfinite(diff).any() else math.inf
        results.append(FeatureSkew(name, int(known.sum()), int((~agree).sum()), worst))
    if not results:
        return SkewReport("insufficient_data", math.nan, (), len(joined), "no feature with offline values to compare")
    skewed = [f for f in results if f.mismatch_share > max_skew_share]
    share = len(skewed) / len(results)
    status: Status = "skew" if skewed else "ok"
    names = ", ".join(f"{f.feature} {f.mismatch_share:.0%}" for f in skewed) or "none"
    detail = f"{len(skewed)} of {len(results)} features skewed (mismatch share > {max_skew_share:.0%}): {names}"
    return SkewReport(status, share, tuple(results), len(joined), detail)
