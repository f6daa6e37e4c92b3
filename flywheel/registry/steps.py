"""The library side of the register and export pipeline steps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flywheel.config.training import TrainingConfig


def register_candidate(run_id: str, alias: str, config: TrainingConfig, *, reason: str = "") -> dict[str, Any]:
    """Register the run's model and point ``alias`` at the new version."""
    from flywheel.registry.mlflow_registry import connect, register

    connect(config.tracking_uri, config.experiment, config.artifact_root)
    version = register(run_id, config.model_name, alias=alias, tags={"gate": reason[:250]})
    return {"version": version, "alias": alias, "model_name": config.model_name, "run_id": run_id}


def export_for_serving(
    bundle_dir: str | Path, out_dir: str | Path, config: TrainingConfig, *, run_id: str = ""
) -> Path:
    """Export TorchScript + Triton repository; attach them to the run when ``run_id`` is given."""
    import pandas as pd

    from flywheel.export.torchscript import export_bundle
    from flywheel.models.bundle import ModelBundle

    bundle_dir = Path(bundle_dir)
    bundle = ModelBundle.load(bundle_dir)
    catalog = pd.read_parquet(bundle_dir / "catalog.parquet")
    out = export_bundle(bundle, catalog, out_dir)
    if run_id:
        import mlflow

        from flywheel.registry.mlflow_registry import connect

        connect(config.tracking_uri, config.experiment, config.artifact_root)
        with mlflow.start_run(run_id=run_id):
            mlflow.log_artifacts(str(out), artifact_path="serving")
    return out
