"""Components of the data steps: the data-quality gate and the training set."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Output

from components.image import PROJECT_IMAGE


@dsl.component(base_image=PROJECT_IMAGE, install_kfp_package=False)
def fetch_window(
    window_uri: str, platform_config_json: str, window_start: str, window_end: str, window: Output[Dataset]
) -> str:
    """The training window in ``[window_start, window_end)`` (ISO times; empty: open): the parquet at
    ``window_uri``, or (empty) built by the feature platform."""
    import json

    from flywheel.models.steps import fetch_window as fetch

    info = fetch(window_uri, platform_config_json, window.path, start=window_start, end=window_end)
    window.metadata.update({k: v for k, v in info.items() if isinstance(v, str | int)})
    return json.dumps(info)


@dsl.component(base_image=PROJECT_IMAGE, install_kfp_package=False)
def validate_data(
    window: Input[Dataset],
    catalog_uri: str,
    config_json: str,
    window_end: str,
    window_info: str,
    report: Output[Markdown],
    drift_report: Output[HTML],
    purpose: str = "training",
) -> NamedTuple("GateOutputs", [("passed", bool), ("summary", str)]):
    """Run the data-quality gate (circuit breaker) on the training window.

    Freshness is measured against ``window_end``, else against the newest event the feature
    platform saw (``events_end`` of ``window_info``, the fetch step's result). ``purpose`` is
    ``retraining`` in the retraining pipeline (drift is then a warning, broken data still stops).
    """
    import shutil
    import tempfile
    from collections import namedtuple
    from pathlib import Path

    from flywheel.config.training import parse_training_config
    from flywheel.quality.gate import validate_window

    config = parse_training_config(config_json)
    with tempfile.TemporaryDirectory() as tmp:
        result = validate_window(
            window.path,
            catalog_uri,
            config,
            report_dir=tmp,
            window_end=window_end,
            window_info=window_info,
            purpose="retraining" if purpose == "retraining" else "training",
        )
        shutil.copyfile(Path(tmp) / "quality.md", report.path)
        drift = Path(tmp) / "drift.html"
        Path(drift_report.path).write_text(drift.read_text() if drift.exists() else "<p>no drift report</p>")
    print(result.summary())
    return namedtuple("GateOutputs", ["passed", "summary"])(result.passed, result.summary())


@dsl.component(base_image=PROJECT_IMAGE, install_kfp_package=False)
def build_training_set(
    window: Input[Dataset],
    catalog_uri: str,
    config_json: str,
    train: Output[Dataset],
    holdout: Output[Dataset],
    spec: Output[Artifact],
) -> str:
    """Point-in-time histories, time-based split and the feature spec; returns the window as JSON."""
    import json

    from flywheel.config.training import parse_training_config
    from flywheel.models.steps import build_training_set as build

    info = build(
        window.path,
        catalog_uri,
        parse_training_config(config_json),
        train_path=train.path,
        holdout_path=holdout.path,
        spec_path=spec.path,
    )
    train.metadata["rows"] = info["train_rows"]
    holdout.metadata["rows"] = info["holdout_rows"]
    return json.dumps(info)
