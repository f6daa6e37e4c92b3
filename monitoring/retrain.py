"""The runners of a retraining: the same `retraining` pipeline run locally with kfp.local, or
compiled and submitted to Kubeflow Pipelines with ``kfp.Client`` on a cluster."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from flywheel.config.models import FlywheelConfig
from flywheel.config.training import TrainingConfig


def _absolute(training: TrainingConfig) -> TrainingConfig:
    uri = training.tracking_uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str(Path(uri.removeprefix("sqlite:///")).resolve())
    root = training.artifact_root if "://" in training.artifact_root else str(Path(training.artifact_root).resolve())
    return training.model_copy(update={"tracking_uri": uri, "artifact_root": root})


def retraining_arguments(
    config: FlywheelConfig,
    *,
    window_start: str = "",
    window_end: str = "",
    oracle: bool = True,
    window_uri: str = "",
) -> dict[str, Any]:
    """The retraining pipeline's arguments: the window is ``window_uri`` (a labelled window already
    built, cut to the bounds by the pipeline) or, when empty, built by the feature platform from the
    configuration; the catalog and (with ``oracle``) the oracle are the simulator's ground truth
    when they exist."""
    truth = Path(config.simulator.ground_truth_dir)
    catalog = config.features.catalog_path or truth / "catalog.parquet"
    return {
        "window_uri": window_uri,
        "platform_config_json": config.model_dump_json(),
        "catalog_uri": str(Path(catalog).resolve()),
        "oracle_uri": str(truth.resolve()) if oracle and (truth / "manifest.json").exists() else "",
        "config_json": _absolute(config.training).model_dump_json(),
        "window_start": window_start,
        "window_end": window_end,
    }


class LocalRunner:
    """Runs the retraining pipeline in this process with kfp.local (one run at a time)."""

    def __init__(
        self,
        config: FlywheelConfig,
        *,
        window_start: str = "",
        window_end: str = "",
        oracle: bool = True,
        window_uri: str = "",
    ) -> None:
        self.config, self.window_start, self.window_end, self.oracle = config, window_start, window_end, oracle
        self.window_uri = window_uri

    def __call__(self, run_id: str) -> dict[str, Any]:
        """Run and return the pipeline's outcome (registered / stopped / failed)."""
        from pipelines.local import run_local

        run_dir = Path(self.config.home).resolve() / "pipelines" / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        arguments = retraining_arguments(
            self.config,
            window_start=self.window_start,
            window_end=self.window_end,
            oracle=self.oracle,
            window_uri=self.window_uri,
        )
        t0 = time.perf_counter()
        outcome = run_local("retraining", arguments, pipeline_root=run_dir / "root", log_path=run_dir / "kfp.log")
        outcome["seconds"] = round(time.perf_counter() - t0, 1)
        return outcome


class KfpRunner:
    """Compiles the retraining pipeline and submits it to Kubeflow Pipelines."""

    def __init__(self, config: FlywheelConfig) -> None:
        self.config = config

    def __call__(self, run_id: str) -> dict[str, Any]:
        """Submit and return ``{"status": "submitted", "kfp_run_id": ...}``; raises when KFP is unreachable."""
        import kfp

        from pipelines.compile import compile_pipeline

        client = kfp.Client(host=self.config.monitoring.trigger.kfp_host)
        with tempfile.TemporaryDirectory() as tmp:
            package = compile_pipeline("retraining", tmp)
            run = client.create_run_from_pipeline_package(
                str(package), arguments=retraining_arguments(self.config), run_name=run_id
            )
        return {"status": "submitted", "kfp_run_id": str(run.run_id)}


def runner_for(config: FlywheelConfig) -> LocalRunner | KfpRunner:
    """The runner the configuration names."""
    return KfpRunner(config) if config.monitoring.trigger.runner == "kfp" else LocalRunner(config)
