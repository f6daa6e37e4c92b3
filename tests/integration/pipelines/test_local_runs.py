"""The pipelines run end to end under kfp.local, with MLflow on SQLite in a temporary folder.

Training registers the first version as champion; retraining with a margin it cannot reach
stops at the promotion gate (champion unchanged, no challenger), with a margin it can reach it
registers a challenger; evaluation scores the champion, and the challenger side by side with
the champion, on a fresh window; promotion and rollback move the aliases. A corrupted, an empty
and a window missing a feature each stop at the data-quality gate with the champion unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flywheel.config.simulator import SimulatorConfig
from flywheel.config.training import PromotionConfig, QualityConfig, RankerConfig, RetrievalConfig, TrainingConfig
from flywheel.simulator.frames import simulate_window
from pipelines.local import run_local

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("pipelines")
    # a week simulated first, so that the 7-day features of both windows are full (comparable)
    sim = SimulatorConfig(users=60, items=50, days=11, new_items_per_day=2, seed=5, sessions_per_user_day=3.0)
    world = simulate_window(sim, first_day=7)
    frame, half = world.frame, world.frame["event_timestamp"].quantile(0.5)
    frame[frame["event_timestamp"] < half].to_parquet(root / "window.parquet")  # days 7-8
    frame[frame["event_timestamp"] >= half].to_parquet(root / "fresh.parquet")  # days 9-10: a new window
    world.catalog.to_parquet(root / "catalog.parquet")
    world.save_ground_truth(root / "ground_truth")
    config = TrainingConfig(
        retrieval=RetrievalConfig(epochs=1, history_length=5),
        ranker=RankerConfig(epochs=1),
        quality=QualityConfig(min_rows=500),
        promotion=PromotionConfig(min_ndcg_vs_popularity=0.0, max_ece=0.5),
        eval_k=(5, 10),
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        artifact_root=str(root / "artifacts"),
    )
    return {"root": root, "config": config}


def _run(setup: dict, name: str, window: str, config: TrainingConfig, **extra: str) -> dict:
    root: Path = setup["root"]
    events: list[tuple[str, str]] = []
    args = {
        "window_uri": str(root / window),
        "catalog_uri": str(root / "catalog.parquet"),
        "oracle_uri": str(root / "ground_truth"),
        "config_json": config.model_dump_json(),
        **extra,
    }
    outcome = run_local(
        name,
        args,
        pipeline_root=root / f"run-{name}-{window}",
        log_path=root / f"{name}-{window}.log",
        on_event=lambda task, status: events.append((task, status)),
    )
    outcome["events"] = events
    return outcome


def _aliases(config: TrainingConfig) -> dict[str, str]:
    """The registered model's aliases as {alias: version} ({} before the first registration)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.tracking_uri)
    try:
        model = client.get_registered_model(config.model_name)
    except MlflowException:
        return {}
    return {alias: str(version) for alias, version in model.aliases.items()}


def test_training_retraining_evaluation(setup: dict) -> None:
    config: TrainingConfig = setup["config"]
    trained = _run(setup, "training", "window.parquet", config)
    assert trained["status"] == "registered", trained
    assert (trained["version"], trained["alias"]) == ("1", "champion")
    assert ("export-model", "SUCCESS") in trained["events"]
    serving = Path(trained["serving"])
    assert (serving / "triton" / "ranker" / "config.pbtxt").exists()
    assert (serving / "torchscript" / "user_tower.pt").exists()

    import mlflow

    mlflow.set_tracking_uri(config.tracking_uri)
    mlflow.set_registry_uri(config.tracking_uri)  # an earlier test of this process may have set another
    run = mlflow.get_run(trained["run_id"])
    assert {"two_stage.ndcg_at_10", "heads.click.auc", "oracle.ndcg_at_10", "window.rows"} <= set(run.data.metrics)
    assert "window.start" in run.data.tags and "features" in run.data.params
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(trained["run_id"], "plots")}
    assert artifacts == {"plots/roc.png", "plots/calibration.png", "plots/ndcg_by_k.png"}

    strict = config.model_copy(update={"promotion": config.promotion.model_copy(update={"min_relative_gain": 10.0})})
    retrained = _run(setup, "retraining", "fresh.parquet", strict)
    assert retrained["status"] == "stopped" and retrained["stage"] == "promotion", retrained
    assert "does not beat the champion" in retrained["reason"]
    assert _aliases(config) == {"champion": "1"}

    evaluated = _run(setup, "evaluation", "fresh.parquet", config, model_ref="champion")
    assert evaluated["status"] == "evaluated" and evaluated["version"] == "1", evaluated
    assert 0.0 <= evaluated["metrics"]["two_stage.ndcg@10"] <= 1.0
    assert "champion.two_stage.ndcg@10" not in evaluated["metrics"]  # the champion is not compared with itself

    lenient = config.model_copy(
        update={"promotion": config.promotion.model_copy(update={"min_relative_gain": -1.0, "min_absolute_gain": -1.0})}
    )
    challenger = _run(setup, "retraining", "fresh.parquet", lenient)
    assert (challenger["status"], challenger["version"], challenger["alias"]) == ("registered", "2", "challenger")
    assert _aliases(config) == {"champion": "1", "challenger": "2"}
    side_by_side = _run(setup, "evaluation", "fresh.parquet", config, model_ref="challenger")
    assert side_by_side["version"] == "2" and "champion.two_stage.ndcg@10" in side_by_side["metrics"]

    from flywheel.registry.mlflow_registry import promote, rollback

    promote(config.model_name)
    assert _aliases(config) == {"champion": "2", "previous_champion": "1"}
    rollback(config.model_name, "canary failed")
    assert _aliases(config) == {"champion": "1"}


def test_corrupted_window_stops_at_the_data_gate(setup: dict) -> None:
    root: Path = setup["root"]
    import pandas as pd

    before = _aliases(setup["config"])
    frame = pd.read_parquet(root / "window.parquet")
    frame.loc[frame.index[::4], "propensity"] = np.nan
    frame.loc[frame.index[::3], "click"] = 5
    frame.to_parquet(root / "corrupted.parquet")
    outcome = _run(setup, "training", "corrupted.parquet", setup["config"])
    assert outcome["status"] == "stopped" and outcome["stage"] == "data-quality", outcome
    assert "null_rates" in outcome["reason"] and "value_ranges" in outcome["reason"]
    tasks = [task for task, _ in outcome["events"]]
    assert "train-ranker" not in tasks and "register-model" not in tasks
    (root / "garbage.parquet").write_bytes(b"PAR1 this is not parquet")
    garbage = _run(setup, "training", "garbage.parquet", setup["config"])
    assert garbage["stage"] == "data-quality" and "not a readable parquet table" in garbage["reason"]
    frame = pd.read_parquet(root / "window.parquet")
    frame.iloc[:0].to_parquet(root / "empty.parquet")
    empty = _run(setup, "training", "empty.parquet", setup["config"])
    assert empty["stage"] == "data-quality" and "volume: 0 rows" in empty["reason"], empty
    frame.drop(columns=["content_avg_completion_rate"]).to_parquet(root / "missing.parquet")
    missing = _run(setup, "training", "missing.parquet", setup["config"])
    assert missing["stage"] == "data-quality", missing
    assert "missing column(s): content_avg_completion_rate" in missing["reason"]
    assert _aliases(setup["config"]) == before  # a stopped run leaves the champion where it was
