"""The drift and data-quality job: read a window of the prediction log and of the event stream,
compare it with the champion's training reference, write an HTML + JSON report per window and
set the Prometheus gauges. The decisions are :mod:`flywheel.monitoring.drift`; this module reads,
renders (Evidently) and exports.

References:
- prediction log features: the champion's training sample (``reference/window_sample.parquet``
  logged with the version's run, the same columns the server logs);
- prediction scores: the scores the same model version served in the window just before (or in
  an explicit baseline window);
- event stream: the events of the champion's training window (the run's ``window.start`` /
  ``window.end`` tags); targets (CTR, watch > 50%): the click / watch_50 rates of the training sample.

Each source is windowed on its own clock (:mod:`flywheel.monitoring.windows`): the prediction log
carries the model server's clock, the event stream the clients'. The job also sets the feature
views' freshness (the age of each view's newest offline row).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flywheel.config.models import FlywheelConfig
from flywheel.features.freshness import ViewFreshness
from flywheel.monitoring.drift import (
    TARGETS,
    FeatureDrift,
    QualityFinding,
    ScoreDrift,
    TargetDrift,
    combined_status,
    exported_value,
    feature_drift,
    feedback_closed,
    prediction_drift,
    report_threshold,
    target_drift,
    window_quality,
)
from flywheel.monitoring.windows import Window, baseline_window, in_window, newest_ms, source_window
from flywheel.quality.checks import VALUE_RANGES
from monitoring import metrics

#: Event-stream columns compared with the training window's events.
EVENT_COLUMNS = ("event_type", "device_type", "watch_seconds", "position", "genre")


@dataclass
class SourceResult:
    """What the job found for one source (predictions or events) in one window."""

    source: str
    window: Window
    rows: int
    features: FeatureDrift
    quality: tuple[QualityFinding, ...]
    scores: ScoreDrift | None = None
    targets: tuple[TargetDrift, ...] = ()
    online_ctr: dict[str, float] = field(default_factory=dict)
    """Clicks per impression by the impression's variant (impressions whose feedback window closed)."""
    baseline: Window | None = None
    """The window the scores were compared with (predictions only)."""
    report_dir: str = ""

    @property
    def status(self) -> str:
        """drift | ok | insufficient_data (drift when features, scores or a target drifted)."""
        scores = self.scores.status if self.scores is not None else None
        return combined_status(self.features.status, scores, [t.status for t in self.targets])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "source": self.source,
            "status": self.status,
            "window": {"start_ms": self.window.start_ms, "end_ms": self.window.end_ms, "label": self.window.label},
            "baseline": asdict(self.baseline) if self.baseline is not None else None,
            "rows": self.rows,
            "features": self.features.to_dict(),
            "scores": asdict(self.scores) if self.scores else None,
            "targets": [asdict(t) for t in self.targets],
            "online_ctr": self.online_ctr,
            "quality": [asdict(q) for q in self.quality],
        }


@dataclass
class Reference:
    """The champion's training reference."""

    version: str = ""
    sample: pd.DataFrame | None = None
    """The training sample (training-set contract columns)."""
    window_start_ms: int | None = None
    window_end_ms: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def read_topic(config: FlywheelConfig, topic: str) -> list[dict[str, Any]]:
    """Every JSON record of ``topic`` (a throwaway consumer group; nothing is committed)."""
    from flywheel.events.local_log import LogError
    from flywheel.events.log import open_event_log

    log = open_event_log(config.event_log)
    try:
        try:
            ends = log.end_offsets(topic)
        except LogError:  # the topic does not exist (yet)
            return []
        if not any(ends.values()):
            return []
        consumer = log.consumer(topic, group=f"monitor-{uuid.uuid4().hex[:8]}")
        for partition in ends:
            consumer.seek(partition, 0)
        out: list[dict[str, Any]] = []
        while batch := consumer.poll(max_records=10_000):
            for record in batch:
                try:
                    out.append(json.loads(record.value))
                except ValueError:
                    continue
        consumer.close()
        return out
    finally:
        log.close()


def valid_events(config: FlywheelConfig) -> list[dict[str, Any]]:
    """Every valid event of the events topic, once each (the feature platform's reader and validator)."""
    from flywheel.events.log import open_event_log
    from flywheel.events.validation import EventValidator, ValidationRules
    from flywheel.features.sources import SourceError, scan_events

    rules = ValidationRules(
        max_clock_skew_ms=int(config.validation.max_clock_skew_seconds * 1000),
        max_watch_seconds=config.validation.max_watch_seconds,
    )
    log = open_event_log(config.event_log)
    try:
        return scan_events(log, config.event_log.topics.events, EventValidator(rules=rules)).events
    except SourceError:  # no events topic yet, or an empty one
        return []
    finally:
        log.close()


def predictions_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per served request (prediction-log contract): time, variant, version, the logged
    features as columns, ``top_score`` and the list of ``scores``."""
    rows = []
    for rec in records:
        if rec.get("error"):
            continue
        scores = [float(s) for s in rec.get("scores") or []]
        rows.append(
            {
                **{k: v for k, v in (rec.get("features") or {}).items() if not isinstance(v, list | dict)},
                "timestamp_ms": int(rec["timestamp_ms"]),
                "variant": rec.get("variant", ""),
                "model_version": str(rec.get("model_version", "")),
                "top_score": scores[0] if scores else np.nan,
                "scores": scores,
            }
        )
    return pd.DataFrame(rows)


def events_frame(records: Sequence[Mapping[str, Any]], catalog: pd.DataFrame | None = None) -> pd.DataFrame:
    """Flattened valid events (see :func:`valid_events`) with the title's first genre (when a catalog is given)."""
    from flywheel.features.sources import flatten_events

    frame = flatten_events(records)
    frame["variant"] = [(r.get("context") or {}).get("variant") or "none" for r in records]
    if catalog is not None and "genres" in catalog.columns and len(frame):
        first = catalog.set_index("content_id")["genres"].map(lambda g: g[0] if len(g) else None)
        frame["genre"] = frame["content_id"].map(first)
    return frame


def champion_reference(config: FlywheelConfig) -> Reference:
    """The champion's training sample and window from MLflow (an empty reference when none)."""
    import mlflow

    from flywheel.registry.mlflow_registry import CHAMPION, connect, download_reference, version_by_alias

    training = config.training
    connect(training.tracking_uri, training.experiment, training.artifact_root)
    champion = version_by_alias(training.model_name, CHAMPION)
    if champion is None:
        return Reference()
    with tempfile.TemporaryDirectory() as tmp:
        sample = download_reference(champion.run_id, tmp)
    tags = mlflow.get_run(champion.run_id).data.tags

    def ms(key: str) -> int | None:
        value = tags.get(key)
        if not value:
            return None
        ts = pd.Timestamp(value)
        return int((ts.tz_localize("UTC") if ts.tzinfo is None else ts).value // 1_000_000)

    return Reference(champion.version, sample, ms("window.start"), ms("window.end"))


def _quality(
    frame: pd.DataFrame,
    window: Window,
    reference_rate: float | None,
    config: FlywheelConfig,
    cols: Sequence[str],
    ranges: Mapping[str, tuple[float | None, float | None]],
) -> tuple[QualityFinding, ...]:
    drift = config.monitoring.drift
    return window_quality(
        frame,
        window_hours=window.hours,
        window_end_ms=window.end_ms,
        timestamp_column="timestamp_ms",
        columns=cols,
        ranges=ranges,
        reference_rows_per_hour=reference_rate,
        max_null_rate=drift.max_null_rate,
        max_staleness_minutes=drift.max_staleness_minutes,
        min_volume_ratio=drift.min_volume_ratio,
    )


def check_predictions(
    predictions: pd.DataFrame,
    reference: Reference,
    config: FlywheelConfig,
    *,
    window_spec: str,
    baseline_spec: str | None = None,
) -> SourceResult | None:
    """Feature, score and quality checks of a prediction-log window (None when the log is empty).

    Both windows are on the prediction log's clock: ``window_spec`` (a duration ends at the newest
    prediction) and ``baseline_spec`` for the scores (default: the window just before).
    """
    if predictions.empty:
        return None
    drift = config.monitoring.drift
    newest = newest_ms(predictions["timestamp_ms"])
    window = source_window(window_spec, newest)
    current = predictions.loc[in_window(predictions["timestamp_ms"], window)]
    before = baseline_window(window, baseline_spec, newest_ms=newest)
    baseline = predictions.loc[in_window(predictions["timestamp_ms"], before)]
    if len(current):
        served = current["model_version"].mode().iloc[0]
        baseline = baseline.loc[baseline["model_version"] == served]
    logged = [
        c for c in current.columns if c not in ("timestamp_ms", "variant", "model_version", "top_score", "scores")
    ]
    sample = reference.sample if reference.sample is not None else pd.DataFrame()
    features = feature_drift(
        sample,
        current,
        logged,
        psi_threshold=drift.psi_threshold,
        max_drift_share=drift.max_drift_share,
        min_rows=drift.min_rows,
    )
    cur_scores = current["scores"].explode().astype("float64") if len(current) else pd.Series(dtype="float64")
    ref_scores = baseline["scores"].explode().astype("float64") if len(baseline) else pd.Series(dtype="float64")
    scores = prediction_drift(
        ref_scores, cur_scores, psi_threshold=drift.prediction_psi_threshold, min_rows=drift.min_rows
    )
    rate = len(baseline) / before.hours if len(baseline) else None
    quality = _quality(current, window, rate, config, logged, VALUE_RANGES)
    return SourceResult("predictions", window, len(current), features, quality, scores=scores, baseline=before)


def check_events(
    events: pd.DataFrame,
    reference: Reference,
    config: FlywheelConfig,
    *,
    window_spec: str,
    catalog: pd.DataFrame | None,
) -> SourceResult | None:
    """Feature, target and quality checks of an event-stream window against the training window's events."""
    if events.empty:
        return None
    drift = config.monitoring.drift
    window = source_window(window_spec, newest_ms(events["timestamp_ms"]))
    current = events.loc[in_window(events["timestamp_ms"], window)]
    if reference.window_start_ms is not None and reference.window_end_ms is not None:
        ref_window = Window(reference.window_start_ms, reference.window_end_ms)
        ref_events = events.loc[in_window(events["timestamp_ms"], ref_window)]
        rate = len(ref_events) / ref_window.hours if len(ref_events) else None
    else:
        ref_events, rate = pd.DataFrame(), None
    features = feature_drift(
        ref_events,
        current,
        EVENT_COLUMNS,
        psi_threshold=drift.psi_threshold,
        max_drift_share=drift.max_drift_share,
        min_rows=drift.min_rows,
    )
    targets: tuple[TargetDrift, ...] = ()
    online_ctr: dict[str, float] = {}
    if len(current):
        targets, online_ctr = _targets(current, reference.sample, catalog, config)
    ranges = {"watch_seconds": (0.0, config.validation.max_watch_seconds), "position": (0.0, None)}
    quality = _quality(current, window, rate, config, ("device_type", "event_type", "user_id"), ranges)
    return SourceResult("events", window, len(current), features, quality, targets=targets, online_ctr=online_ctr)


def _targets(
    current: pd.DataFrame, sample: pd.DataFrame | None, catalog: pd.DataFrame | None, config: FlywheelConfig
) -> tuple[tuple[TargetDrift, ...], dict[str, float]]:
    """Target drift against the training sample's rates, and the online CTR by variant."""
    from flywheel.features.training_set import label_impressions

    durations: dict[str, float] = {}
    if catalog is not None and "duration_seconds" in catalog.columns:
        durations = dict(zip(catalog["content_id"], catalog["duration_seconds"].astype(float), strict=False))
    label_ms = int(config.features.label_window_minutes * 60_000)
    # only impressions whose feedback window has closed inside the data we have count
    newest = int(current["timestamp_ms"].max())
    examples = label_impressions(current, durations, label_ms)
    examples = examples.loc[feedback_closed(examples["timestamp_ms"], newest, label_ms)]
    variants = examples["example_id"].map(current.set_index("event_id")["variant"]).fillna("none")
    online_ctr = {str(v): float(c) for v, c in examples["label_click"].groupby(variants).mean().items()}
    if sample is None:
        return (), online_ctr
    references = {}
    positives = {}
    for label, name in TARGETS.items():
        column = label if label in sample.columns else f"label_{label}"
        if column not in sample.columns:
            continue
        references[name] = float(sample[column].mean())
        positives[name] = int(examples[f"label_{label}"].sum())
    drift = config.monitoring.drift
    targets = target_drift(
        references,
        positives,
        len(examples),
        max_relative_change=drift.target_max_relative_change,
        min_impressions=drift.target_min_impressions,
    )
    return targets, online_ctr


def export_metrics(result: SourceResult) -> None:
    """Set the Prometheus gauges of one source's result."""
    source = result.source
    metrics.MONITOR_WINDOW_ROWS.labels(source).set(result.rows)
    insufficient = result.features.status == "insufficient_data"
    metrics.MONITOR_INSUFFICIENT_DATA.labels(source).set(1 if insufficient else 0)
    metrics.DRIFT_SHARE.labels(source).set(exported_value(result.features.status, result.features.share))
    for column in result.features.columns:
        metrics.FEATURE_DRIFT_SCORE.labels(source, column.column).set(column.psi)
    if result.scores is not None:
        metrics.PREDICTION_DRIFT_SCORE.set(exported_value(result.scores.status, result.scores.psi))
    for target in result.targets:
        metrics.TARGET_DRIFT_SCORE.labels(target.target).set(exported_value(target.status, target.relative_change))
    for variant, ctr in result.online_ctr.items():
        metrics.ONLINE_CTR.labels(variant).set(ctr)
    for finding in result.quality:
        gauge = {
            "volume": metrics.DATA_QUALITY_VOLUME_RATIO,
            "nulls": metrics.DATA_QUALITY_NULL_RATE,
            "out_of_range": metrics.DATA_QUALITY_OUT_OF_RANGE,
        }.get(finding.check)
        if gauge is not None:
            gauge.labels(source).set(finding.value)
        elif finding.check == "freshness" and np.isfinite(finding.value):
            metrics.DATA_QUALITY_STALENESS.labels(source).set(finding.value * 60)
    metrics.MONITOR_LAST_RUN.labels("drift").set(time.time())


def write_report(
    result: SourceResult, reference: pd.DataFrame, current: pd.DataFrame, folder: Path, *, sample_rows: int
) -> Path:
    """``drift.json`` and (when both sides have rows) Evidently's ``drift.html`` for one window."""
    out = folder / result.source / result.window.label
    out.mkdir(parents=True, exist_ok=True)
    columns = [c.column for c in result.features.columns]
    if columns and len(reference) and len(current):
        from evidently import Report
        from evidently.presets import DataDriftPreset

        drift_share = result.features.share if result.features.share == result.features.share else 0.5
        ref = reference[columns].sample(min(sample_rows, len(reference)), random_state=0)
        cur = current[columns].sample(min(sample_rows, len(current)), random_state=0)
        threshold = report_threshold(result.features.columns)
        preset = DataDriftPreset(method="psi", threshold=threshold, drift_share=max(drift_share, 0.01))
        Report([preset]).run(current_data=cur, reference_data=ref).save_html(str(out / "drift.html"))
    result.report_dir = str(out)
    (out / "drift.json").write_text(json.dumps(result.to_dict(), indent=2, default=str), encoding="utf-8")
    return out


@dataclass
class DriftRun:
    """Both sources' results of one run."""

    results: list[SourceResult]
    reference_version: str
    freshness: list[ViewFreshness] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "reference_version": self.reference_version,
            "results": [r.to_dict() for r in self.results],
            "freshness": [{"view": f.view, "age_seconds": f.age_seconds, "stale": f.stale} for f in self.freshness],
        }


def feature_freshness(config: FlywheelConfig, *, now: datetime) -> list[ViewFreshness]:
    """Age of the newest offline row of each feature view (the batch job and the stream both write
    there) at ``now``."""
    from flywheel.features.freshness import assess, newest_offline_row
    from flywheel.features.store import CONTENT_VIEW, USER_VIEW, offline_path

    newest: dict[str, datetime | None] = {}
    for view in (USER_VIEW, CONTENT_VIEW):
        stamp = newest_offline_row(offline_path(config.features, view))
        newest[view] = stamp.replace(tzinfo=UTC) if stamp is not None and stamp.tzinfo is None else stamp
    return assess(newest, {}, now, timedelta(hours=config.features.stale_after_hours))


def export_freshness(views: Sequence[ViewFreshness]) -> None:
    """Set the freshness gauge of every view (a view with no row at all is infinitely old)."""
    for view in views:
        metrics.FEATURE_FRESHNESS.labels(view.view).set(math.inf if view.age_seconds is None else view.age_seconds)


def run_drift(
    config: FlywheelConfig,
    *,
    window_spec: str,
    prediction_window: str | None = None,
    prediction_baseline: str | None = None,
    reference: Reference | None = None,
    catalog: pd.DataFrame | None = None,
    reports: bool = True,
    now: datetime | None = None,
) -> DriftRun:
    """Check the latest window of the prediction log and of the event stream; export gauges and
    write the reports. ``reference`` defaults to the champion's (MLflow).

    Args:
        config: The platform configuration.
        window_spec: The window of each source on its own clock (a duration ends at the source's newest record).
        prediction_window: The prediction log's window when it differs (the log carries the server's clock).
        prediction_baseline: The window the served scores are compared with (default: the one just before).
        reference: The champion's training reference.
        catalog: The catalog (the events' genre).
        reports: Write the HTML + JSON report of each window.
        now: The clock of the feature freshness (default: the wall clock).
    """
    reference = reference if reference is not None else champion_reference(config)
    folder = config.monitoring.drift.reports_dir or Path(config.home) / "reports" / "monitoring"
    topics = config.event_log.topics
    preds = predictions_frame(read_topic(config, topics.predictions))
    events = events_frame(valid_events(config), catalog)
    results = []
    pred_result = check_predictions(
        preds, reference, config, window_spec=prediction_window or window_spec, baseline_spec=prediction_baseline
    )
    if pred_result is not None:
        results.append(pred_result)
        if reports:
            cur = preds.loc[in_window(preds["timestamp_ms"], pred_result.window)]
            sample = reference.sample if reference.sample is not None else pd.DataFrame()
            write_report(pred_result, sample, cur, Path(folder), sample_rows=config.monitoring.drift.report_sample_rows)
    event_result = check_events(events, reference, config, window_spec=window_spec, catalog=catalog)
    if event_result is not None:
        results.append(event_result)
        if reports:
            cur = events.loc[in_window(events["timestamp_ms"], event_result.window)]
            if reference.window_start_ms is not None and reference.window_end_ms is not None:
                ref_window = Window(reference.window_start_ms, reference.window_end_ms)
                ref = events.loc[in_window(events["timestamp_ms"], ref_window)]
            else:
                ref = pd.DataFrame()
            write_report(event_result, ref, cur, Path(folder), sample_rows=config.monitoring.drift.report_sample_rows)
    for result in results:
        export_metrics(result)
    freshness = feature_freshness(config, now=now or datetime.now(UTC))
    export_freshness(freshness)
    return DriftRun(results, reference.version, freshness)
