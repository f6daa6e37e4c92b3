"""Components of the evaluation steps: evaluate a candidate, the promotion gate, evaluate a version."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components.image import PROJECT_IMAGE


@dsl.component(base_image=PROJECT_IMAGE, install_kfp_package=False)
def evaluate_candidate(
    train: Input[Dataset],
    holdout: Input[Dataset],
    spec: Input[Artifact],
    retrieval: Input[Model],
    ranker: Input[Model],
    quality_report: Input[Markdown],
    catalog_uri: str,
    oracle_uri: str,
    window_json: str,
    config_json: str,
    bundle: Output[Model],
    metrics: Output[Metrics],
    evaluation: Output[Artifact],
) -> str:
    """Evaluate against popularity, the champion and the oracle; log the MLflow run; return its id."""
    import json
    import shutil
    import tempfile
    from pathlib import Path

    import pandas as pd

    from flywheel.config.training import parse_training_config
    from flywheel.evaluation.steps import evaluate_and_log, headline_metrics
    from flywheel.models.steps import assemble_bundle, read_table

    config = parse_training_config(config_json)
    model = assemble_bundle(spec.path, retrieval.path, ranker.path, config)
    with tempfile.TemporaryDirectory() as tmp:
        summary = evaluate_and_log(
            model,
            train=pd.read_parquet(train.path),
            holdout=pd.read_parquet(holdout.path),
            catalog=read_table(catalog_uri, "catalog"),
            config=config,
            oracle_uri=oracle_uri,
            bundle_dir=bundle.path,
            report_dir=tmp,
            window=json.loads(window_json),
            quality_report=quality_report.path,
        )
        shutil.copyfile(Path(tmp) / "evaluation.json", evaluation.path)
    for name, value in headline_metrics(summary["metrics"]).items():
        metrics.log_metric(name, value)
    return summary["run_id"]


@dsl.component(base_image=PROJECT_IMAGE, install_kfp_package=False)
def gate_candidate(evaluation: Input[Artifact], config_json: str, bootstrap_champion: bool) -> NamedTuple(
    "Decision", [("passed", bool), ("alias", str), ("reason", str), ("run_id", str)]
):
    """Margins against the champion and guardrails (calibration, latency, baseline)."""
    import json
    from collections import namedtuple
    from pathlib import Path

    from flywheel.config.training import parse_training_config
    from flywheel.evaluation.steps import decide

    result = decide(
        json.loads(Path(evaluation.path).read_text()),
        parse_training_config(config_json),
        bootstrap_champion=bootstrap_champion,
    )
    print(result["reason"])
    return namedtuple("Decision", ["passed", "alias", "reason", "run_id"])(
        result["passed"], result["alias"], result["reason"], result["run_id"]
    )


@dsl.component(base_image=PROJECT_IMAGE, install_kfp_package=False)
def evaluate_version(
    model_ref: str,
    train: Input[Dataset],
    holdout: Input[Dataset],
    catalog_uri: str,
    oracle_uri: str,
    window_json: str,
    config_json: str,
    metrics: Output[Metrics],
    evaluation: Output[Artifact],
) -> str:
    """Score a registered version (number or alias) on a fresh window; return the outcome as JSON."""
    import json
    import shutil
    import tempfile
    from pathlib import Path

    import pandas as pd

    from flywheel.config.training import parse_training_config
    from flywheel.evaluation.steps import evaluate_registered, headline_metrics
    from flywheel.models.steps import read_table

    with tempfile.TemporaryDirectory() as tmp:
        summary = evaluate_registered(
            model_ref,
            train=pd.read_parquet(train.path),
            holdout=pd.read_parquet(holdout.path),
            catalog=read_table(catalog_uri, "catalog"),
            config=parse_training_config(config_json),
            oracle_uri=oracle_uri,
            report_dir=tmp,
            window=json.loads(window_json),
        )
        shutil.copyfile(Path(tmp) / "evaluation.json", evaluation.path)
    headline = headline_metrics(summary["metrics"])
    for name, value in headline.items():
        metrics.log_metric(name, value)
    return json.dumps(
        {
            "status": "evaluated",
            "version": summary["version"],
            "run_id": summary["run_id"],
            "metrics": headline,
        }
    )
