"""Configuration of monitoring: drift, data quality and skew jobs, the retrain trigger (owned by
flywheel.monitoring and monitoring/)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from flywheel.config.base import Section


class DriftConfig(Section):
    """Drift and data-quality checks of a window against the champion's training reference."""

    window: str = "1h"
    """Default window: a duration back from now (`15m`, `1h`, `24h`, `7d`) or `START/END` (ISO times)."""
    min_rows: int = Field(default=200, ge=1)
    """A window (or a reference) with fewer rows reports `insufficient_data`, never drift."""
    psi_threshold: float = Field(default=0.2, gt=0)
    """A column drifted when its population stability index (PSI, Evidently's binning) is at least this."""
    max_drift_share: float = Field(default=0.3, ge=0, le=1)
    """The window drifted when at least this share of the compared columns drifted."""
    prediction_psi_threshold: float = Field(default=0.2, gt=0)
    """The scores drifted when their PSI against the reference scores is at least this."""
    target_max_relative_change: float = Field(default=0.25, gt=0)
    """A target (CTR, watch > 50%) drifted when its rate moved by more than this share of the reference rate."""
    target_min_impressions: int = Field(default=500, ge=1)
    """Fewer impressions with feedback than this: the target reports `insufficient_data`."""
    max_null_rate: float = Field(default=0.05, ge=0, le=1)
    """Data quality: largest share of missing values in a feature of the window."""
    max_staleness_minutes: float = Field(default=60.0, gt=0)
    """Data quality: the newest record must be at most this old at the window's end."""
    min_volume_ratio: float = Field(default=0.2, ge=0)
    """Data quality: records per hour at least this share of the reference's rate (0: not checked)."""
    report_sample_rows: int = Field(default=5000, ge=100)
    """Rows sampled from each side for the Evidently HTML report (the decisions use every row)."""
    reports_dir: Path | None = None
    """Where reports go (default: `<home>/reports/monitoring`)."""


class SkewConfig(Section):
    """Training-serving skew: logged serving features against the offline store for the same entity and time."""

    abs_tolerance: float = Field(default=1e-6, ge=0)
    """Two values agree when they differ by at most this ..."""
    rel_tolerance: float = Field(default=0.01, ge=0)
    """... or by at most this share of the offline value."""
    max_skew_share: float = Field(default=0.05, ge=0, le=1)
    """A feature is skewed when more than this share of its compared values disagree."""
    min_rows: int = Field(default=50, ge=1)
    """Fewer joined rows: `insufficient_data`."""


class TriggerConfig(Section):
    """The retrain trigger: the Alertmanager receiver and the guards around a retraining."""

    alerts: tuple[str, ...] = ("FlywheelFeatureDrift", "FlywheelPredictionDrift", "FlywheelTargetDrift")
    """Alert names that ask for a retraining; any other alert is audited and ignored."""
    debounce_seconds: float = Field(default=60.0, ge=0)
    """Notifications within this long after the previous one count as the same request (audited, not acted on)."""
    cooldown_seconds: float = Field(default=6 * 3600.0, ge=0)
    """No new retraining within this long after the last one started."""
    max_runs_per_day: int = Field(default=3, ge=0)
    """At most this many retrainings start in any 24 hours."""
    audit_path: Path | None = None
    """The audit log, one JSON line per decision (default: `<home>/monitoring/decisions.jsonl`)."""
    port: int = Field(default=9095, ge=1, le=65535)
    """Port of `flywheel monitor webhook`."""
    host: str = "127.0.0.1"
    """Address the webhook binds (0.0.0.0 in a pod)."""
    runner: Literal["local", "kfp"] = "local"
    """`local`: run the retraining pipeline with kfp.local; `kfp`: submit it to Kubeflow Pipelines."""
    kfp_host: str = "http://ml-pipeline.kubeflow:8888"
    """Kubeflow Pipelines API endpoint (runner `kfp`)."""
    retry_attempts: int = Field(default=4, ge=1)
    """Attempts to reach the runner before the decision is audited as failed."""
    retry_backoff_seconds: float = Field(default=2.0, ge=0)
    """First wait between attempts; it doubles each time (exponential backoff)."""


class MonitoringConfig(Section):
    """Monitoring: drift, quality and skew jobs and the retrain trigger."""

    drift: DriftConfig = DriftConfig()
    """Drift and data quality."""
    skew: SkewConfig = SkewConfig()
    """Training-serving skew."""
    trigger: TriggerConfig = TriggerConfig()
    """The retrain trigger."""
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """Port of the Prometheus endpoint of a repeating drift job (null: no endpoint)."""
