"""MLflow: log a training run (params, metrics, data window, features, signature, plots), register
a version, move the ``champion`` / ``challenger`` aliases (stages are deprecated), read them back,
promote a challenger and roll a bad champion back.

SQLite backend and a local artifact folder by default; any server URI when configured. Nothing
happens at import time: call :func:`connect` from an entry point.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous_champion"
"""Where :func:`promote` leaves the champion it replaces, for :func:`rollback`."""
_BAD_CHARS = re.compile(r"[^A-Za-z0-9_\-. :/]")
PIP_REQUIREMENTS = ["torch==2.13.0", "pandas", "numpy", "pyarrow", "flywheel-mlops"]


def metric_key(name: str) -> str:
    """An MLflow-safe metric name: ``two_stage.ndcg@10`` -> ``two_stage.ndcg_at_10``."""
    return _BAD_CHARS.sub("_", name.replace("@", "_at_").replace("=", "_"))


def connect(tracking_uri: str, experiment: str, artifact_root: str | None = None) -> str:
    """Point MLflow at ``tracking_uri`` and make sure ``experiment`` exists; return its id.

    A new experiment stores artifacts under ``artifact_root`` (a folder is made absolute).
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        return str(found.experiment_id)
    location = None
    if artifact_root:
        location = artifact_root if "://" in artifact_root else Path(artifact_root).resolve().as_uri()
    return str(mlflow.create_experiment(experiment, artifact_location=location))


@dataclass(frozen=True)
class RunRecord:
    """What a logged training run produced."""

    run_id: str
    experiment_id: str


def log_training_run(
    *,
    experiment_id: str,
    bundle_dir: str | Path,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    window: Mapping[str, Any],
    features: Sequence[str],
    plots: Sequence[str | Path],
    input_example: pd.DataFrame,
    output_example: pd.DataFrame,
    reference_sample: pd.DataFrame | None = None,
    quality_report: str | Path | None = None,
    run_name: str | None = None,
) -> RunRecord:
    """Log one run: params, metrics, data window, feature list, signature + model, plots."""
    import mlflow
    from mlflow.models import infer_signature

    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics({metric_key(k): float(v) for k, v in metrics.items() if v == v})
        mlflow.set_tags({f"window.{k}": str(v) for k, v in window.items()})
        mlflow.log_dict({"window": {k: str(v) for k, v in window.items()}, "features": list(features)}, "data.json")
        mlflow.log_param("features", ",".join(features)[:500])
        for plot in plots:
            mlflow.log_artifact(str(plot), artifact_path="plots")
        if quality_report is not None:
            mlflow.log_artifact(str(quality_report), artifact_path="quality")
        if reference_sample is not None:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "window_sample.parquet"
                reference_sample.to_parquet(path)
                mlflow.log_artifact(str(path), artifact_path="reference")
        mlflow.log_artifacts(str(bundle_dir), artifact_path="bundle")
        from flywheel.registry.pyfunc import RecommenderModel, jsonify

        signature = infer_signature(jsonify(input_example), output_example)
        mlflow.pyfunc.log_model(
            name="model",
            python_model=RecommenderModel(),
            artifacts={"bundle": str(bundle_dir)},
            signature=signature,
            pip_requirements=PIP_REQUIREMENTS,
        )
        return RunRecord(run.info.run_id, experiment_id)


def register(run_id: str, model_name: str, *, alias: str | None, tags: Mapping[str, str] | None = None) -> str:
    """Register the run's model as a new version of ``model_name``; optionally point ``alias`` at it."""
    import mlflow
    from mlflow import MlflowClient

    version = mlflow.register_model(f"runs:/{run_id}/model", model_name)
    client = MlflowClient()
    for key, value in (tags or {}).items():
        client.set_model_version_tag(model_name, version.version, key, value)
    if alias:
        client.set_registered_model_alias(model_name, alias, version.version)
    return str(version.version)


def set_alias(model_name: str, alias: str, version: str) -> None:
    """Point ``alias`` of ``model_name`` at ``version``."""
    from mlflow import MlflowClient

    MlflowClient().set_registered_model_alias(model_name, alias, version)


@dataclass(frozen=True)
class VersionInfo:
    """A registered version found by alias."""

    version: str
    run_id: str


def run_metrics(tracking_uri: str, run_id: str, names: Sequence[str]) -> dict[str, float]:
    """The metrics ``names`` (flywheel names, e.g. ``two_stage.ndcg@10``) that run ``run_id`` logged."""
    from mlflow import MlflowClient

    logged = MlflowClient(tracking_uri=tracking_uri).get_run(run_id).data.metrics
    return {name: float(logged[metric_key(name)]) for name in names if metric_key(name) in logged}


def version_by_alias(model_name: str, alias: str) -> VersionInfo | None:
    """The version behind ``alias`` (None when the model or the alias does not exist)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        mv = MlflowClient().get_model_version_by_alias(model_name, alias)
    except MlflowException:
        return None
    return VersionInfo(str(mv.version), str(mv.run_id))


def version_info(model_name: str, version: str) -> VersionInfo:
    """The run behind a version number."""
    from mlflow import MlflowClient

    mv = MlflowClient().get_model_version(model_name, version)
    return VersionInfo(str(mv.version), str(mv.run_id))


def aliases(model_name: str) -> dict[str, str]:
    """Every alias of ``model_name`` as {alias: version} ({} when the model is not registered)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        model = MlflowClient().get_registered_model(model_name)
    except MlflowException:
        return {}
    return {alias: str(version) for alias, version in model.aliases.items()}


@dataclass(frozen=True)
class AliasMove:
    """What :func:`promote` or :func:`rollback` did."""

    champion: str
    """The version that is champion now."""
    replaced: str | None
    """The version that was champion before (None when there was none)."""


def promote(model_name: str, ref: str = CHALLENGER) -> AliasMove:
    """Make ``ref`` (a version number or alias, ``challenger`` by default) the champion.

    The replaced champion keeps the ``previous_champion`` alias, so :func:`rollback` can restore
    it; the ``challenger`` alias is removed when it pointed at the promoted version.

    Raises:
        LookupError: ``ref`` names no version of ``model_name``.
        ValueError: ``ref`` is already the champion.
    """
    from mlflow import MlflowClient

    found = resolve(model_name, ref)
    if found is None:
        raise LookupError(f"model {model_name!r} has no version or alias {ref!r}")
    current = version_by_alias(model_name, CHAMPION)
    if current is not None and current.version == found.version:
        raise ValueError(f"version {found.version} of {model_name!r} is already the champion")
    client = MlflowClient()
    if current is not None:
        client.set_registered_model_alias(model_name, PREVIOUS_CHAMPION, current.version)
    client.set_registered_model_alias(model_name, CHAMPION, found.version)
    if aliases(model_name).get(CHALLENGER) == found.version:
        client.delete_registered_model_alias(model_name, CHALLENGER)
    return AliasMove(found.version, current.version if current else None)


def rollback(model_name: str, reason: str = "") -> AliasMove:
    """Give the champion alias back to the ``previous_champion`` (a bad model rolled back).

    The demoted version is tagged ``rolled_back`` with ``reason``; ``previous_champion`` is removed.

    Raises:
        LookupError: There is no previous champion to return to.
    """
    from mlflow import MlflowClient

    previous = version_by_alias(model_name, PREVIOUS_CHAMPION)
    if previous is None:
        raise LookupError(f"model {model_name!r} has no {PREVIOUS_CHAMPION!r} to roll back to")
    current = version_by_alias(model_name, CHAMPION)
    client = MlflowClient()
    client.set_registered_model_alias(model_name, CHAMPION, previous.version)
    client.delete_registered_model_alias(model_name, PREVIOUS_CHAMPION)
    if current is not None and current.version != previous.version:
        client.set_model_version_tag(model_name, current.version, "rolled_back", reason or "manual rollback")
    return AliasMove(previous.version, current.version if current else None)


def resolve(model_name: str, ref: str) -> VersionInfo | None:
    """A version by number (``"3"``) or alias (``"champion"``); None when there is no such version."""
    from mlflow.exceptions import MlflowException

    if not ref.isdigit():
        return version_by_alias(model_name, ref)
    try:
        return version_info(model_name, ref)
    except MlflowException:
        return None


def download_bundle(run_id: str, dest: str | Path) -> Path:
    """Download the model bundle of a run into ``dest``; return the bundle folder."""
    import mlflow

    return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="bundle", dst_path=str(dest)))


def download_reference(run_id: str, dest: str | Path) -> pd.DataFrame | None:
    """The reference window sample logged with a run (None when it has none)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="reference/window_sample.parquet", dst_path=str(dest)
        )
    except (MlflowException, OSError):
        return None
    return pd.read_parquet(path)


def past_window_rows(experiment_id: str, limit: int = 20) -> list[float]:
    """Row counts (metric ``window.rows``) of the latest runs of the experiment."""
    import mlflow

    runs = mlflow.search_runs(
        experiment_ids=[experiment_id], max_results=limit, order_by=["attributes.start_time DESC"]
    )
    col = "metrics.window.rows"
    if runs.empty or col not in runs.columns:
        return []
    return [float(v) for v in runs[col].dropna()]


def log_evaluation_run(
    *,
    experiment_id: str,
    model_name: str,
    version: str,
    metrics: Mapping[str, float],
    window: Mapping[str, Any],
    plots: Sequence[str | Path] = (),
) -> str:
    """Log the scores of a registered version on a fresh window as its own run; return the run id."""
    import mlflow

    with mlflow.start_run(experiment_id=experiment_id, run_name=f"evaluate {model_name} v{version}") as run:
        mlflow.set_tags({"kind": "evaluation", "model_name": model_name, "model_version": version})
        mlflow.set_tags({f"window.{k}": str(v) for k, v in window.items()})
        mlflow.log_metrics({metric_key(k): float(v) for k, v in metrics.items() if v == v})
        for plot in plots:
            mlflow.log_artifact(str(plot), artifact_path="plots")
        return run.info.run_id
