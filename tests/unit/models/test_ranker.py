"""The multi-task ranker: weighted score, position debiasing on data with known bias, export."""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from flywheel.config.simulator import SimulatorConfig
from flywheel.config.training import HEAD_NAMES, RankerConfig, TrainingConfig
from flywheel.export.torchscript import export_bundle
from flywheel.models.bundle import ModelBundle, fit_feature_spec, train_bundle
from flywheel.models.encoding import encode_ranker
from flywheel.models.ranker import combined_score, predict_heads, train_ranker
from flywheel.simulator.frames import simulate_window


def test_combined_score_is_the_configured_weighted_sum() -> None:
    config = RankerConfig(head_weights={"click": 1.0, "like": 2.0})
    probs = np.array([[0.5, 0.1, 0.1, 0.25, 0.9]])
    assert combined_score(probs, config).tolist() == pytest.approx([0.5 + 2 * 0.25])


def test_unknown_head_weight_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown heads"):
        RankerConfig(head_weights={"clicks": 1.0})


@pytest.fixture(scope="module")
def position_bias_data() -> tuple:
    """Rows ordered newest-first (with jitter): position correlates with recency, which has no
    effect on the true click probability; examination falls as (1 + position) ** -2. The fair
    log shows uniform pools in random order to users who examine every slot."""
    world = SimulatorConfig(users=100, items=80, days=6, new_items_per_day=4, seed=3, sessions_per_user_day=5.0)
    biased = simulate_window(world.model_copy(update={"position_bias": 2.0, "row_decay": 1.0}), order="newest_first")
    fair = simulate_window(world.model_copy(update={"position_bias": 0.0, "row_decay": 1.0}), order="random")
    window, biased, fair = biased, biased.frame.assign(history=[[]] * len(biased.frame)), fair.frame
    fair = fair[fair["event_timestamp"] >= fair["event_timestamp"].quantile(0.5)].head(3000).reset_index(drop=True)
    fair["history"] = [[]] * len(fair)
    truth = window.true_affinity(fair["user_id"].to_numpy(), fair["content_id"].to_numpy(), outer=False)
    return window, biased, fair, truth


def test_position_debiasing_matters_on_data_with_known_bias(position_bias_data) -> None:
    world, biased, fair, truth = position_bias_data
    spec = fit_feature_spec(biased, world.catalog, TrainingConfig(id_embeddings="items"))
    result = {}
    for mode in ("none", "shallow_tower", "ipw"):
        model = train_ranker(
            biased,
            world.catalog,
            spec,
            RankerConfig(position_debiasing=mode, epochs=3, validation_fraction=0.0),
            seed=0,
        )
        p = predict_heads(model, fair, world.catalog, spec)[:, 0]
        result[mode] = (
            spearmanr(p, truth).statistic,
            spearmanr(p, -fair["content_release_recency_days"]).statistic,
        )
    # the naive model learns "new items get clicked" (they were shown on top); the debiased ones keep
    # much less of it and rank the clicks users would make at equal examination better
    assert result["none"][1] > 0.3, result
    for mode in ("shallow_tower", "ipw"):
        assert result[mode][1] < 0.5 * result["none"][1], result
        assert result[mode][0] > result["none"][0], result


def test_bundle_round_trip_and_torchscript_export(tmp_path, split, catalog, small_config) -> None:
    bundle = train_bundle(split.train, catalog, small_config)
    loaded = ModelBundle.load(bundle.save(tmp_path / "bundle"))
    p1 = predict_heads(bundle.ranker, split.holdout, catalog, bundle.spec)
    p2 = predict_heads(loaded.ranker, split.holdout, catalog, loaded.spec)
    assert np.allclose(p1, p2)
    out = export_bundle(loaded, catalog, tmp_path / "export")
    scripted = torch.jit.load(str(out / "triton" / "ranker" / "1" / "model.pt"))
    x = encode_ranker(split.holdout, catalog, loaded.spec)
    with torch.no_grad():
        probs, score = scripted(x["sparse"], x["dense"], x["history"])
    assert probs.shape == (len(split.holdout), len(HEAD_NAMES)) and score.shape == (len(split.holdout), 1)
    assert np.allclose(probs.numpy(), p2, atol=1e-6)
    assert np.allclose(score.numpy()[:, 0], combined_score(p2, small_config.ranker), atol=1e-6)
    config = (out / "triton" / "ranker" / "config.pbtxt").read_text()
    assert 'platform: "pytorch_libtorch"' in config
    assert f"dims: [ {loaded.spec.ranker_dense_dim} ]" in config
    user_tower = torch.jit.load(str(out / "torchscript" / "user_tower.pt"))
    assert user_tower is not None and (out / "index" / "item_embeddings.pt").exists()


def test_two_stage_score_blends_ranker_and_retrieval() -> None:
    from flywheel.models.bundle import two_stage_score

    ranker, similarity = np.array([0.2, 0.1]), np.array([0.0, 0.5])
    assert two_stage_score(ranker, similarity, blend=0.0).argmax() == 0
    blended = two_stage_score(ranker, similarity * 10, blend=0.5)
    assert blended.tolist() == pytest.approx([np.log(0.2), np.log(0.1) + 2.5])


def test_scoring_given_candidates_matches_the_two_stage_order(split, catalog, small_config) -> None:
    from flywheel.models.bundle import recommend, score_candidates
    from flywheel.models.dataset import query_rows

    bundle = train_bundle(split.train, catalog, small_config)
    queries = query_rows(split.holdout).head(5)
    rec = recommend(bundle, queries, catalog, split.train, k=8, candidates=8)
    ids = rec.content_ids[rec.retrieval]  # [5, 8] retrieved items, in retrieval order
    qidx = np.repeat(np.arange(len(queries)), ids.shape[1])
    logit, score = score_candidates(bundle, queries, qidx, ids.reshape(-1), catalog, split.train)
    # the retrieval logits are those the index retrieved by (descending within a query) ...
    assert (np.diff(logit.reshape(ids.shape), axis=1) <= 1e-5).all()
    # ... and re-ranking the same candidates by the two-stage score gives recommend's order
    order = np.argsort(-score.reshape(ids.shape), axis=1, kind="stable")
    assert (np.take_along_axis(ids, order, axis=1) == rec.content_ids[rec.two_stage]).all()
    # lists of different lengths, and an item outside the catalog (retrieval logit 0)
    logit, score = score_candidates(
        bundle, queries, np.array([0, 0, 1]), np.array([ids[0, 0], ids[0, 1], "not-an-item"]), catalog, split.train
    )
    assert logit.shape == score.shape == (3,) and logit[2] == 0.0 and np.isfinite(score).all()
