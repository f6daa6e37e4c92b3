"""End-to-end evaluation on a small simulated window: baselines, slices, plots."""

import math

import pytest

from flywheel.config.training import RankerConfig, RetrievalConfig, TrainingConfig
from flywheel.evaluation.evaluate import evaluate
from flywheel.evaluation.plots import write_plots
from flywheel.models.bundle import train_bundle
from flywheel.models.dataset import prepare_window, time_split
from flywheel.models.synthetic import make_world


@pytest.fixture(scope="module")
def evaluation():
    world = make_world(n_users=80, n_items=60, seed=21)
    split = time_split(prepare_window(world.impressions(600, seed=22), world.catalog, history_length=10), 0.2)
    config = TrainingConfig(
        retrieval=RetrievalConfig(epochs=3, history_length=10), ranker=RankerConfig(epochs=2), eval_k=(5, 10)
    )
    bundle = train_bundle(split.train, world.catalog, config)
    return evaluate(
        bundle, split.train, split.holdout, world.catalog, config, champion=bundle, oracle=world.true_affinity
    )


def test_metrics_cover_heads_systems_slices(evaluation) -> None:
    m = evaluation.metrics
    for head in ("click", "watch_50", "complete", "like", "add_to_list"):
        for name in ("auc", "pr_auc", "log_loss", "ece"):
            assert not math.isnan(m[f"heads.{head}.{name}"])
    for system in ("retrieval", "two_stage", "popularity", "oracle", "champion.two_stage"):
        for name in ("recall@10", "ndcg@10", "map@10", "mrr"):
            assert 0.0 <= m[f"{system}.{name}"] <= 1.0
    assert any(k.startswith("slice.device=") for k in m)
    assert "slice.content=new.rows" in m
    # the champion here is the same bundle: identical two-stage scores
    assert m["champion.two_stage.ndcg@10"] == pytest.approx(m["two_stage.ndcg@10"])
    # the oracle ranks by the true affinity
    assert m["oracle.ndcg@10"] > m["popularity.ndcg@10"]


def test_plots_are_written(evaluation, tmp_path) -> None:
    paths = write_plots(evaluation, tmp_path)
    assert [p.name for p in paths] == ["roc.png", "calibration.png", "ndcg_by_k.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
