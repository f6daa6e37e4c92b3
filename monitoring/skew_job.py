"""The training-serving skew job: the user features the server logged with each prediction,
against the same features read back from the Feast offline store for the same user as of the
same time (a point-in-time join). The comparison is :func:`flywheel.monitoring.skew.compare_features`."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from flywheel.config.models import FlywheelConfig
from flywheel.models.contract import USER_DENSE
from flywheel.monitoring.skew import SkewReport, compare_features
from flywheel.monitoring.windows import in_window, parse_window
from monitoring import metrics

USER_VIEW = "user_features"


def logged_user_features(records: Sequence[dict], features: Sequence[str] = USER_DENSE) -> pd.DataFrame:
    """``user_id``, ``timestamp_ms`` and ``<feature>_served`` of every champion/canary prediction."""
    rows = [
        {
            "user_id": str(r["user_id"]),
            "timestamp_ms": int(r["timestamp_ms"]),
            **{f"{name}_served": (r.get("features") or {}).get(name) for name in features},
        }
        for r in records
        if not r.get("error") and r.get("variant") != "shadow" and (r.get("features") or {}).get("user_known", 1)
    ]
    return pd.DataFrame(rows, columns=["user_id", "timestamp_ms", *(f"{n}_served" for n in features)])


def offline_user_features(config: FlywheelConfig, served: pd.DataFrame, features: Sequence[str]) -> pd.DataFrame:
    """The offline store's value of each feature for each (user, time) of ``served`` (``<feature>_offline``)."""
    from flywheel.features.store import offline_paths, open_store

    store = open_store(config.features)
    entity_df = served[["user_id", "timestamp_ms"]].copy()
    entity_df["event_timestamp"] = pd.to_datetime(entity_df["timestamp_ms"], unit="ms", utc=True)
    with offline_paths(store):
        joined = store.get_historical_features(
            entity_df=entity_df, features=[f"{USER_VIEW}:{name}" for name in features], full_feature_names=False
        ).to_df()
    joined = joined.rename(columns={name: f"{name}_offline" for name in features})
    return served.merge(
        joined[["user_id", "timestamp_ms", *(f"{n}_offline" for n in features)]],
        on=["user_id", "timestamp_ms"],
        how="left",
    ).drop_duplicates(["user_id", "timestamp_ms"])


def run_skew(config: FlywheelConfig, *, window_spec: str, records: Sequence[dict] | None = None) -> SkewReport:
    """Compare a window of the prediction log with the offline store; export the gauges and write a JSON report."""
    from monitoring.drift_job import read_topic

    if records is None:
        records = read_topic(config, config.event_log.topics.predictions)
    served = logged_user_features(records)
    skew = config.monitoring.skew
    if served.empty:
        report = compare_features(
            served, USER_DENSE, abs_tolerance=0, rel_tolerance=0, max_skew_share=1, min_rows=skew.min_rows
        )
        label = "empty"
    else:
        window = parse_window(window_spec, now_ms=int(served["timestamp_ms"].max()) + 1)
        served = served.loc[in_window(served["timestamp_ms"], window)]
        joined = offline_user_features(config, served, USER_DENSE) if len(served) else served
        report = compare_features(
            joined,
            USER_DENSE,
            abs_tolerance=skew.abs_tolerance,
            rel_tolerance=skew.rel_tolerance,
            max_skew_share=skew.max_skew_share,
            min_rows=skew.min_rows,
        )
        label = window.label
    metrics.SKEW_SHARE.set(0.0 if report.status == "insufficient_data" else report.share)
    for feature in report.features:
        metrics.SKEW_FEATURE_MISMATCH.labels(feature.feature).set(feature.mismatch_share)
    metrics.MONITOR_LAST_RUN.labels("skew").set(time.time())
    folder = (config.monitoring.drift.reports_dir or Path(config.home) / "reports" / "monitoring") / "skew" / label
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "skew.json").write_text(json.dumps(report.to_dict(), indent=2, default=str), encoding="utf-8")
    return report
