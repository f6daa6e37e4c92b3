"""The library side of the evaluate, gate and evaluate-registered pipeline steps."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from flywheel.config.training import TrainingConfig
from flywheel.evaluation.evaluate import Evaluation, Oracle, evaluate
from flywheel.evaluation.gate import promotion_gate
from flywheel.evaluation.plots import write_plots
from flywheel.models.bundle import ModelBundle
from flywheel.models.contract import FEATURES


def load_oracle(uri: str) -> Oracle | None:
    """The oracle behind ``uri`` (None when empty).

    ``uri`` is the simulator's ground-truth folder (``manifest.json``, latent tastes and item
    vectors; :func:`flywheel.simulator.ground_truth.true_affinity`).

    Raises:
        ValueError: ``uri`` is not a ground-truth folder.
    """
    if not uri:
        return None
    if not (Path(uri) / "manifest.json").is_file():
        raise ValueError(f"oracle {uri}: not a simulator ground-truth folder (no manifest.json)")
    from flywheel.simulator.ground_truth import SimulatorOracle

    return SimulatorOracle(uri)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys for a nested dict (the run parameters)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


HEADLINE_METRICS = (
    "two_stage.ndcg@10",
    "retrieval.ndcg@10",
    "popularity.ndcg@10",
    "oracle.ndcg@10",
    "champion.two_stage.ndcg@10",
    "sim.two_stage.ndcg@10",
)
"""What the pipeline components show in the KFP UI (every metric is in the MLflow run)."""


def headline_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """The :data:`HEADLINE_METRICS` that ``metrics`` has."""
    return {name: float(metrics[name]) for name in HEADLINE_METRICS if name in metrics}


def _champion(config: TrainingConfig, tmp: str) -> tuple[ModelBundle | None, str | None]:
    from flywheel.registry.mlflow_registry import CHAMPION, download_bundle, version_by_alias

    found = version_by_alias(config.model_name, CHAMPION)
    if found is None:
        return None, None
    return ModelBundle.load(download_bundle(found.run_id, tmp)), found.version


def evaluate_and_log(
    bundle: ModelBundle,
    *,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    catalog: pd.DataFrame,
    config: TrainingConfig,
    oracle_uri: str,
    bundle_dir: str | Path,
    report_dir: str | Path,
    window: dict[str, Any],
    quality_report: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate a candidate against the baselines and the champion, log the MLflow run.

    Writes the bundle (with the catalog, for the pyfunc flavour) to ``bundle_dir`` and
    ``evaluation.json`` + plots to ``report_dir``.

    Returns:
        ``metrics``, ``run_id``, ``champion_version`` (None when there is no champion).
    """
    from flywheel.models.stack import with_sources
    from flywheel.registry.mlflow_registry import connect, log_training_run

    bundle_dir, report_dir = Path(bundle_dir), Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    if bundle.state is None:
        bundle = with_sources(bundle, train, catalog, config)
    bundle.save(bundle_dir)
    catalog.to_parquet(bundle_dir / "catalog.parquet")
    experiment_id = connect(config.tracking_uri, config.experiment, config.artifact_root)
    with tempfile.TemporaryDirectory() as tmp:
        champion, champion_version = _champion(config, tmp)
        result: Evaluation = evaluate(
            bundle, train, holdout, catalog, config, champion=champion, oracle=load_oracle(oracle_uri)
        )
    result.metrics["window.rows"] = float(len(train) + len(holdout))
    result.metrics.update({f"ids.{name}": value for name, value in bundle.spec.id_selection.items()})
    if bundle.ranker_config.source_blend is not None:  # chosen by the ranker step (imported data)
        result.metrics["ranker.source_blend"] = float(bundle.ranker_config.source_blend)
    plots = write_plots(result, report_dir / "plots", config.calibration_bins)
    example = holdout.head(5).drop(columns=["history"], errors="ignore")
    from flywheel.config.training import HEAD_NAMES

    output = pd.DataFrame(result.probabilities[:5], columns=[f"p_{h}" for h in HEAD_NAMES])
    output["score"] = output.to_numpy() @ [config.ranker.head_weights.get(h, 0.0) for h in HEAD_NAMES]
    record = log_training_run(
        experiment_id=experiment_id,
        bundle_dir=bundle_dir,
        params=flatten(config.model_dump(mode="json")),
        metrics=result.metrics,
        window=window,
        features=FEATURES,
        plots=plots,
        input_example=example[[c for c in example.columns if c not in HEAD_NAMES]],
        output_example=output,
        reference_sample=train.drop(columns=["history"], errors="ignore").sample(
            min(len(train), config.quality.drift_sample_rows), random_state=config.seed
        ),
        quality_report=quality_report,
    )
    summary = {"metrics": result.metrics, "run_id": record.run_id, "champion_version": champion_version}
    (report_dir / "evaluation.json").write_text(json.dumps(summary, indent=2, default=float), encoding="utf-8")
    return summary


def decide(evaluation: dict[str, Any], config: TrainingConfig, *, bootstrap_champion: bool) -> dict[str, Any]:
    """Apply the promotion gate; choose the alias a passing candidate gets.

    ``champion`` when ``bootstrap_champion`` and there is no champion yet (the first model),
    else ``challenger`` (promotion to champion is the canary's job).
    """
    decision = promotion_gate(evaluation["metrics"], config.promotion)
    first = evaluation.get("champion_version") is None
    alias = "champion" if (bootstrap_champion and first) else "challenger"
    return {"passed": decision.passed, "alias": alias, "reason": decision.summary(), "run_id": evaluation["run_id"]}


def evaluate_registered(
    model_ref: str,
    *,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    catalog: pd.DataFrame,
    config: TrainingConfig,
    oracle_uri: str,
    report_dir: str | Path,
    window: dict[str, Any],
) -> dict[str, Any]:
    """Score a registered version (number or alias) on a fresh window and log an evaluation run.

    Another version than the champion is scored side by side with the champion (``champion.*``).

    Raises:
        LookupError: The version or alias does not exist.
    """
    from flywheel.registry.mlflow_registry import connect, download_bundle, log_evaluation_run, resolve

    experiment_id = connect(config.tracking_uri, config.experiment, config.artifact_root)
    found = resolve(config.model_name, model_ref)
    if found is None:
        raise LookupError(f"model {config.model_name!r} has no version or alias {model_ref!r}")
    report_dir = Path(report_dir)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = ModelBundle.load(download_bundle(found.run_id, Path(tmp) / "scored"))
        champion, champion_version = _champion(config, str(Path(tmp) / "champion"))
        if champion_version == found.version:
            champion = None  # the champion itself is scored: no second copy side by side
        result = evaluate(bundle, train, holdout, catalog, config, champion=champion, oracle=load_oracle(oracle_uri))
    plots = write_plots(result, report_dir / "plots", config.calibration_bins)
    run_id = log_evaluation_run(
        experiment_id=experiment_id,
        model_name=config.model_name,
        version=found.version,
        metrics=result.metrics,
        window=window,
        plots=plots,
    )
    summary = {"metrics": result.metrics, "run_id": run_id, "version": found.version}
    (report_dir / "evaluation.json").write_text(json.dumps(summary, indent=2, default=float), encoding="utf-8")
    return summary
