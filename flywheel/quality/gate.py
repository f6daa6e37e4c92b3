"""The data-quality gate step: read the window, fetch the reference and history, run the checks."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd

from flywheel.config.training import TrainingConfig
from flywheel.models.contract import CATALOG, adapt_feature_platform, utc_time
from flywheel.quality.checks import Check, Purpose, QualityReport, check_schema, run_quality_gate


def _reference_and_history(config: TrainingConfig) -> tuple[pd.DataFrame | None, list[float]]:
    """The champion's reference sample and past window sizes from MLflow (empty when none)."""
    from flywheel.registry.mlflow_registry import (
        CHAMPION,
        connect,
        download_reference,
        past_window_rows,
        version_by_alias,
    )

    experiment_id = connect(config.tracking_uri, config.experiment, config.artifact_root)
    history = past_window_rows(experiment_id)
    champion = version_by_alias(config.model_name, CHAMPION)
    if champion is None:
        return None, history
    with tempfile.TemporaryDirectory() as tmp:
        return download_reference(champion.run_id, tmp), history


def freshness_reference(window_end: str, window_info: str) -> str:
    """What freshness is measured against: ``window_end``, else the fetch step's ``events_end``."""
    if window_end:
        return window_end
    return str(json.loads(window_info).get("events_end", "")) if window_info else ""


def validate_window(
    window_uri: str,
    catalog_uri: str,
    config: TrainingConfig,
    *,
    report_dir: str | Path,
    window_end: str = "",
    window_info: str = "",
    use_registry: bool = True,
    purpose: Purpose = "training",
) -> QualityReport:
    """Run the data-quality gate on a window and write its report (JSON, Markdown, Evidently HTML).

    A window that cannot be read, or a catalog without its contract columns, fails the gate
    with a check saying so; nothing raises for bad data. ``window_end`` (ISO time) is what the
    freshness check measures the newest row against; when empty, the newest event the feature
    platform saw (``events_end`` of ``window_info``, the fetch step's JSON), else no check.
    ``purpose`` is ``retraining`` in the retraining pipeline: drift is then a warning (see
    :func:`flywheel.quality.checks.drift_for_purpose`).
    """
    from flywheel.models.steps import DataError, read_table

    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    try:
        window, notes = adapt_feature_platform(read_table(window_uri, "training window"))
        catalog = read_table(catalog_uri, "catalog")
    except DataError as exc:
        report = QualityReport(checks=(Check("readable", False, str(exc)),), rows=0)
        report.write(report_dir)
        return report
    reference, history = _reference_and_history(config) if use_registry else (None, [])
    report = run_quality_gate(
        window,
        config=config.quality,
        reference=reference,
        history=history,
        window_end=utc_time(freshness_reference(window_end, window_info)),
        html_path=report_dir / "drift.html",
        purpose=purpose,
    )
    catalog_check = check_schema(catalog, CATALOG)
    report = QualityReport(
        checks=report.checks + (Check("catalog_schema", catalog_check.passed, catalog_check.detail),),
        rows=report.rows,
        extra={"notes": notes},
    )
    report.write(report_dir)
    return report
