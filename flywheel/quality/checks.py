"""Pure data-quality checks over a training window; each returns a :class:`Check`.

The gate (:func:`run_quality_gate`) runs them in order: schema, volume against the history of
past windows, freshness, null rates, value ranges, duplicates, and the distribution against
the reference window. Evidently measures null rates (``MissingValueCount``), values out of
range (``OutRangeValueCount``), duplicated keys (``DuplicatedRowCount``) and drift
(``DataDriftPreset``); the checks compare its figures with the configured limits. A window that
fails any check stops the pipeline before training: the champion stays.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import median
from typing import Literal

import numpy as np
import pandas as pd

from flywheel.config.training import HEAD_NAMES, QualityConfig
from flywheel.models.contract import CONTENT_DENSE, CROSS_DENSE, TRAINING_SET, USER_DENSE, Contract

KEY_COLUMNS = ("user_id", "content_id", "event_timestamp")
#: Allowed closed ranges of the numeric columns (None: unbounded on that side).
VALUE_RANGES: dict[str, tuple[float | None, float | None]] = {
    **{h: (0.0, 1.0) for h in HEAD_NAMES},
    "position": (1.0, None),
    "propensity": (1e-9, 1.0),
    "user_total_watch_hours_7d": (0.0, 24.0 * 7),
    "user_skip_rate_7d": (0.0, 1.0),
    "user_content_completion_rate_30d": (0.0, 1.0),
    "content_total_plays_7d": (0.0, None),
    "content_avg_completion_rate": (0.0, 1.0),
    "content_play_to_impression_ratio": (0.0, None),
    "user_x_content_genre_overlap": (-1.0, 1.0),
}
Purpose = Literal["training", "retraining"]
"""Why a window is checked: a (first) training, or a retraining of a running champion."""
DRIFT_COLUMNS = USER_DENSE + CONTENT_DENSE + CROSS_DENSE + ("device_type", "click", "position")


@dataclass(frozen=True)
class Check:
    """The outcome of one check."""

    name: str
    passed: bool
    detail: str
    value: float | None = None
    warning: bool = False
    """True when the check found a problem that does not stop the pipeline (it passed as a warning)."""


@dataclass(frozen=True)
class QualityReport:
    """All checks of a window; the window passes when every check that ran passed."""

    checks: tuple[Check, ...]
    rows: int
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when no check failed."""
        return all(c.passed for c in self.checks)

    @property
    def warnings(self) -> tuple[Check, ...]:
        """The checks that passed with a warning."""
        return tuple(c for c in self.checks if c.warning)

    @property
    def failures(self) -> tuple[Check, ...]:
        """The failed checks."""
        return tuple(c for c in self.checks if not c.passed)

    def summary(self) -> str:
        """One line naming the failed checks (or saying all passed)."""
        if self.passed:
            warned = "".join(f"; WARNING {c.name}: {c.detail}" for c in self.warnings)
            return f"data-quality gate passed ({len(self.checks)} checks, {self.rows} rows){warned}"
        return "data-quality gate FAILED: " + "; ".join(f"{c.name}: {c.detail}" for c in self.failures)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {"passed": self.passed, "rows": self.rows, "checks": [asdict(c) for c in self.checks], **self.extra}

    def to_markdown(self) -> str:
        """A Markdown table of the checks."""
        lines = ["# Data-quality gate", "", f"**{'PASSED' if self.passed else 'FAILED'}** - {self.rows} rows", ""]
        lines += ["| check | result | detail |", "|---|---|---|"]
        lines += [
            f"| {c.name} | {'FAIL' if not c.passed else 'warn' if c.warning else 'pass'} | {c.detail} |"
            for c in self.checks
        ]
        return "\n".join(lines) + "\n"

    def write(self, folder: str | Path) -> Path:
        """Write quality.json and quality.md into ``folder``; return the JSON path."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "quality.md").write_text(self.to_markdown(), encoding="utf-8")
        path = folder / "quality.json"
        path.write_text(json.dumps(self.to_dict(), indent=2, default=str), encoding="utf-8")
        return path


def check_schema(frame: pd.DataFrame, contract: Contract = TRAINING_SET) -> Check:
    """Every contract column is present with a compatible kind."""
    missing = contract.missing(frame)
    if missing:
        return Check("schema", False, f"missing column(s): {', '.join(missing)}", float(len(missing)))
    try:
        contract.validate(frame, allow_empty=True)
    except ValueError as exc:
        return Check("schema", False, str(exc).split(": ", 1)[-1], 1.0)
    return Check("schema", True, f"{len(contract.columns)} columns present", 0.0)


def check_volume(rows: int, history: Sequence[float], *, min_rows: int, min_ratio: float, max_ratio: float) -> Check:
    """Rows >= ``min_rows`` and within [min_ratio, max_ratio] x the median of past windows."""
    if rows < min_rows:
        return Check("volume", False, f"{rows} rows < minimum {min_rows}", float(rows))
    past = [h for h in history if h > 0]
    if not past:
        return Check("volume", True, f"{rows} rows (no history to compare)", float(rows))
    ratio = rows / median(past)
    ok = min_ratio <= ratio <= max_ratio
    detail = f"{rows} rows = {ratio:.2f} x median of {len(past)} past windows (allowed {min_ratio}-{max_ratio})"
    return Check("volume", ok, detail, ratio)


def check_freshness(newest: pd.Timestamp | None, window_end: pd.Timestamp, *, max_staleness_hours: float) -> Check:
    """The newest row is at most ``max_staleness_hours`` older than the window end."""
    if newest is None or pd.isna(newest):
        return Check("freshness", False, "no timestamps", None)
    lag = (window_end - newest) / pd.Timedelta(hours=1)
    ok = lag <= max_staleness_hours
    return Check(
        "freshness", ok, f"newest row {lag:.1f} h before the window end (max {max_staleness_hours} h)", float(lag)
    )


def _measure(frame: pd.DataFrame, metrics: Sequence[object]) -> list[object]:
    """Run Evidently ``metrics`` on ``frame`` (no reference); their values, in order.

    List-valued columns (feature vectors) reach Evidently as their length, so that a missing
    vector stays missing and Evidently can type the column.
    """
    from evidently import Report

    data = frame.copy()
    for col in data.columns:
        if data[col].dtype != object:
            continue
        first = data[col].dropna().head(1)
        if len(first) and isinstance(first.iloc[0], list | tuple | np.ndarray):
            data[col] = data[col].map(lambda v: None if v is None else len(v))
    snapshot = Report(list(metrics)).run(current_data=data, reference_data=None)
    return [m["value"] for m in snapshot.dict()["metrics"]]


def check_null_rates(frame: pd.DataFrame, columns: Sequence[str], *, max_rate: float) -> Check:
    """Every column's share of nulls (Evidently ``MissingValueCount``) is at most ``max_rate``."""
    from evidently.metrics import MissingValueCount

    present = [c for c in columns if c in frame.columns]
    if frame.empty or not present:
        return Check("null_rates", True, "nothing to check", 0.0)
    values = _measure(frame[present], [MissingValueCount(column=c) for c in present])
    rates = pd.Series([float(v["share"]) for v in values], index=present)  # type: ignore[index]
    worst = rates[rates > max_rate].sort_values(ascending=False)
    if len(worst):
        parts = ", ".join(f"{c} {r:.1%}" for c, r in worst.items())
        return Check("null_rates", False, f"null rate above {max_rate:.1%}: {parts}", float(worst.iloc[0]))
    return Check("null_rates", True, f"max null rate {rates.max():.2%}", float(rates.max()))


def check_value_ranges(frame: pd.DataFrame, ranges: Mapping[str, tuple[float | None, float | None]]) -> Check:
    """Every numeric value lies in its closed range (Evidently ``OutRangeValueCount``); NaN values
    are the null check's business."""
    from evidently.metrics import OutRangeValueCount

    numeric = {
        col: bounds
        for col, bounds in ranges.items()
        if col in frame.columns and pd.api.types.is_numeric_dtype(frame[col]) and frame[col].notna().any()
    }
    if not numeric:
        return Check("value_ranges", True, "nothing to check", 0.0)
    metrics = [
        OutRangeValueCount(column=col, left=-math.inf if lo is None else lo, right=math.inf if hi is None else hi)
        for col, (lo, hi) in numeric.items()
    ]
    values = _measure(frame[list(numeric)].astype(float), metrics)
    bad = [
        f"{col}: {int(v['count'])} value(s) outside [{lo}, {hi}]"  # type: ignore[index]
        for (col, (lo, hi)), v in zip(numeric.items(), values, strict=True)
        if v["count"]  # type: ignore[index]
    ]
    if bad:
        return Check("value_ranges", False, "; ".join(bad), float(len(bad)))
    return Check("value_ranges", True, f"{len(numeric)} columns in range", 0.0)


def check_duplicates(frame: pd.DataFrame, keys: Sequence[str], *, max_rate: float) -> Check:
    """The share of rows repeating an earlier row's keys (Evidently ``DuplicatedRowCount`` over the
    key columns) is at most ``max_rate``."""
    from evidently.metrics import DuplicatedRowCount

    present = [k for k in keys if k in frame.columns]
    if frame.empty or len(present) < len(keys):
        return Check("duplicates", True, "nothing to check", 0.0)
    (count,) = _measure(frame[present], [DuplicatedRowCount()])
    rate = float(count) / len(frame)  # type: ignore[arg-type]
    return Check("duplicates", rate <= max_rate, f"{rate:.2%} duplicated rows (max {max_rate:.1%})", rate)


def check_distribution(
    current: pd.DataFrame,
    reference: pd.DataFrame | None,
    columns: Sequence[str],
    *,
    max_drift_share: float,
    sample_rows: int,
    seed: int = 0,
    html_path: str | Path | None = None,
) -> Check:
    """Evidently's data-drift preset over ``columns``: the share of drifted columns is bounded."""
    if reference is None or reference.empty:
        return Check("distribution", True, "no reference window (first run)", None)
    cols = [c for c in columns if c in current.columns and c in reference.columns]
    if current.empty or not cols:
        return Check("distribution", True, "nothing to compare", None)
    from evidently import Report
    from evidently.presets import DataDriftPreset

    cur = current[cols].sample(min(sample_rows, len(current)), random_state=seed)
    ref = reference[cols].sample(min(sample_rows, len(reference)), random_state=seed)
    snapshot = Report([DataDriftPreset(drift_share=max_drift_share)]).run(current_data=cur, reference_data=ref)
    if html_path is not None:
        snapshot.save_html(str(html_path))
    share = math.nan
    drifted: list[str] = []
    for metric in snapshot.dict()["metrics"]:
        name = metric["metric_name"]
        if name.startswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
        elif name.startswith("ValueDrift"):
            cfg = metric["config"]
            method, thr, value = cfg.get("method", ""), cfg.get("threshold", 0.0), float(metric["value"])
            # p-value methods drift below the threshold, distances at or above it
            is_p = "p_value" in method.lower() or "test" in method.lower()
            if (value < thr) if is_p else (value >= thr):
                drifted.append(cfg["column"])
    ok = share <= max_drift_share
    detail = f"{share:.0%} of {len(cols)} columns drifted (max {max_drift_share:.0%})"
    if drifted:
        detail += f": {', '.join(drifted)}"
    return Check("distribution", ok, detail, share)


def drift_for_purpose(check: Check, purpose: Purpose, retraining_drift: str) -> Check:
    """The distribution check as the run's purpose reads it: in a retraining with
    ``retraining_drift="warn"``, drift beyond the limit passes as a warning (the drift is why the
    run happens); anything else is unchanged. Broken-data checks never go through here."""
    if check.passed or purpose != "retraining" or retraining_drift != "warn":
        return check
    detail = f"{check.detail} -- expected in a retraining run: recorded, not blocking"
    return Check(check.name, True, detail, check.value, warning=True)


def run_quality_gate(
    frame: pd.DataFrame,
    *,
    config: QualityConfig,
    window_end: pd.Timestamp | None = None,
    reference: pd.DataFrame | None = None,
    history: Sequence[float] = (),
    html_path: str | Path | None = None,
    purpose: Purpose = "training",
) -> QualityReport:
    """Run every check on a training window.

    Args:
        frame: The window (training-set contract).
        config: Thresholds.
        window_end: End of the window (the newest row's time when None).
        reference: The reference window (the champion's training sample), if any.
        history: Row counts of past windows.
        html_path: Where to write the Evidently HTML report (not written when None).
        purpose: ``training`` (drift beyond the limit fails) or ``retraining`` (drift is a warning
            when ``config.retraining_drift`` is ``warn``; see :func:`drift_for_purpose`).
    """
    schema = check_schema(frame)
    checks = [schema]
    checks.append(
        check_volume(
            len(frame),
            history,
            min_rows=config.min_rows,
            min_ratio=config.min_volume_ratio,
            max_ratio=config.max_volume_ratio,
        )
    )
    newest = None
    if "event_timestamp" in frame.columns and len(frame):
        ts = pd.to_datetime(frame["event_timestamp"], utc=True, errors="coerce")
        newest = ts.max()
    end = window_end if window_end is not None else newest
    if end is not None and not pd.isna(end):
        checks.append(check_freshness(newest, pd.Timestamp(end), max_staleness_hours=config.max_staleness_hours))
    checks.append(check_null_rates(frame, TRAINING_SET.names, max_rate=config.max_null_rate))
    checks.append(check_value_ranges(frame, VALUE_RANGES))
    checks.append(check_duplicates(frame, KEY_COLUMNS, max_rate=config.max_duplicate_rate))
    if schema.passed and len(frame):
        drift = check_distribution(
            frame,
            reference,
            DRIFT_COLUMNS,
            max_drift_share=config.max_drift_share,
            sample_rows=config.drift_sample_rows,
            html_path=html_path,
        )
        checks.append(drift_for_purpose(drift, purpose, config.retraining_drift))
    return QualityReport(checks=tuple(checks), rows=len(frame))
