"""End-to-end evaluation on a small simulated window: baselines, slices, plots."""

import math

import numpy as np
import pandas as pd
import pytest

from flywheel.config.simulator import SimulatorConfig
from flywheel.config.training import RankerConfig, RetrievalConfig, TrainingConfig
from flywheel.evaluation.evaluate import evaluate
from flywheel.evaluation.metrics import exposed_candidates, rank_flat
from flywheel.evaluation.plots import write_plots
from flywheel.models.bundle import train_bundle
from flywheel.models.dataset import prepare_window, time_split
from flywheel.simulator.frames import simulate_window


@pytest.fixture(scope="module")
def setup():
    world = simulate_window(
        SimulatorConfig(users=80, items=60, days=4, new_items_per_day=5, seed=21, sessions_per_user_day=3.0)
    )
    split = time_split(prepare_window(world.frame, world.catalog, history_length=10), 0.2)
    config = TrainingConfig(
        retrieval=RetrievalConfig(epochs=3, history_length=10), ranker=RankerConfig(epochs=2), eval_k=(5, 10)
    )
    bundle = train_bundle(split.train, world.catalog, config)
    result = evaluate(bundle, split.train, split.holdout, world.catalog, config, champion=bundle, oracle=world.oracle)
    return split, result, bundle, world, config


@pytest.fixture(scope="module")
def evaluation(setup):
    return setup[1]


def test_metrics_cover_heads_systems_slices(evaluation) -> None:
    m = evaluation.metrics
    for head in ("click", "watch_50", "complete", "like", "add_to_list"):
        for name in ("auc", "pr_auc", "log_loss", "ece"):
            assert not math.isnan(m[f"heads.{head}.{name}"])
    for system in ("retrieval", "two_stage", "popularity", "oracle", "champion.two_stage"):
        for name in ("recall@10", "ndcg@10", "map@10", "mrr"):
            assert 0.0 <= m[f"{system}.{name}"] <= 1.0
            assert 0.0 <= m[f"catalog.{system}.{name}"] <= 1.0
    for prefix in ("", "catalog."):
        for base in ("oracle", "popularity"):
            ratio = m[f"{prefix}two_stage.ndcg@10"] / m[f"{prefix}{base}.ndcg@10"]
            assert m[f"{prefix}ratio.two_stage_vs_{base}.ndcg@10"] == pytest.approx(ratio)
    assert "slice.content=new.rows" in m
    devices = {k.split(".")[1] for k in m if k.startswith("slice.device=")}
    assert devices
    for system in ("two_stage", "retrieval", "popularity", "catalog.two_stage"):
        for piece in (*devices, "content=new", "content=existing"):
            for name in ("recall@10", "ndcg@10", "map@10", "mrr"):
                assert 0.0 <= m[f"slice.{piece}.{system}.{name}"] <= 1.0
    for piece in devices:
        assert f"slice.{piece}.click.pr_auc" in m or f"slice.{piece}.click.auc" not in m
    # a title is new or existing: the relevant titles of the two content slices add up
    with_new, with_existing = m["slice.content=new.two_stage.queries"], m["slice.content=existing.two_stage.queries"]
    assert with_new > 0 and with_new + with_existing >= m["two_stage.queries"] >= with_existing
    # the champion here is the same bundle: identical two-stage scores
    assert m["champion.two_stage.ndcg@10"] == pytest.approx(m["two_stage.ndcg@10"])
    # the oracle ranks by the true affinity
    assert m["oracle.ndcg@10"] > m["popularity.ndcg@10"]


def test_simulated_view_ranks_the_catalog_against_the_simulators_responses(setup) -> None:
    split, evaluation, bundle, world, config = setup
    m = evaluation.metrics
    released = (world.catalog["release_ts"] <= split.holdout["event_timestamp"].min()).sum()
    assert m["sim.titles"] == released < len(world.catalog)
    assert m["sim.queries"] == split.holdout["user_id"].nunique()
    for system in ("retrieval", "two_stage", "popularity", "oracle", "champion.two_stage"):
        for name in ("ndcg@5", "ndcg@10", "recall@10", "expected_ndcg@10"):
            assert 0.0 <= m[f"sim.{system}.{name}"] <= 1.0
    # the oracle's order is the ideal one for the expected gains, and the best on the draws
    assert m["sim.oracle.expected_ndcg@10"] == pytest.approx(1.0)
    assert m["sim.oracle.ndcg@10"] > max(m["sim.popularity.ndcg@10"], m["sim.two_stage.ndcg@10"])
    assert m["sim.champion.two_stage.ndcg@10"] == pytest.approx(m["sim.two_stage.ndcg@10"])
    for base in ("oracle", "popularity"):
        ratio = m["sim.two_stage.ndcg@10"] / m[f"sim.{base}.ndcg@10"]
        assert m[f"sim.ratio.two_stage_vs_{base}.ndcg@10"] == pytest.approx(ratio)
    assert m["sim.relevant_per_user"] > 0


def test_plots_are_written(evaluation, tmp_path) -> None:
    paths = write_plots(evaluation, tmp_path)
    assert [p.name for p in paths] == ["roc.png", "calibration.png", "ndcg_by_k.png"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_relevance_is_watching_past_half_for_every_system(setup) -> None:
    split, evaluation, bundle, world, config = setup
    systems = ("retrieval", "two_stage", "popularity", "oracle", "catalog.two_stage", "catalog.oracle")
    watched = split.holdout.loc[split.holdout["watch_50"] > 0, "user_id"].nunique()
    assert all(evaluation.metrics[f"{s}.queries"] == watched for s in systems)
    # clicks without a watch past half do not make an item relevant
    users = sorted(split.holdout["user_id"].unique())
    holdout = split.holdout.copy()
    holdout.loc[holdout["user_id"].isin(users[::2]), "watch_50"] = 0
    m = evaluate(bundle, split.train, holdout, world.catalog, config, oracle=world.oracle).metrics
    expected = holdout.loc[holdout["watch_50"] > 0, "user_id"].nunique()
    assert expected < watched
    assert all(m[f"{s}.queries"] == expected for s in systems)


def test_exposed_candidates_are_each_users_distinct_items_in_id_order() -> None:
    holdout = pd.DataFrame(
        {
            "user_id": ["b", "a", "b", "b", "c", "a"],
            "content_id": ["x2", "x9", "x1", "x2", "x5", "x3"],
        }
    )
    qidx, ids = exposed_candidates(holdout, np.array(["a", "b"]))  # user c is not a query
    assert qidx.tolist() == [0, 0, 1, 1]
    assert ids.tolist() == ["x3", "x9", "x1", "x2"]


def test_rank_flat_orders_each_query_and_pads() -> None:
    qidx = np.array([0, 0, 0, 1, 2, 2])
    ids = np.array(["a", "b", "c", "d", "e", "f"], dtype=object)
    scores = np.array([0.1, 0.5, 0.1, 3.0, -1.0, -1.0])
    ranked = rank_flat(qidx, ids, scores, queries=4, k=2)
    assert ranked.tolist() == [["b", "a"], ["d", None], ["e", "f"], [None, None]]  # ties keep the given order
