"""The one top-K function: several sources, one ranker; its contract and its training data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flywheel.models.bundle import ModelBundle, train_bundle, two_stage_scores
from flywheel.models.ranker import build_ranker
from flywheel.models.stack import (
    BLEND_GRID,
    Recommender,
    choose_source_blend,
    first_queries,
    interest_rows,
    labelled_candidates,
)


@pytest.fixture(scope="module")
def recommender(tmp_path_factory, split, catalog, small_config) -> Recommender:
    bundle = train_bundle(split.train, catalog, small_config)
    folder = bundle.save(tmp_path_factory.mktemp("bundle"))
    return Recommender(ModelBundle.load(folder), catalog=catalog)  # the state travels with the bundle


def test_recommend_returns_k_ranked_unseen_titles(recommender, split) -> None:
    user = str(split.train["user_id"].iloc[0])
    seen = set(interest_rows(split.train).query("user_id == @user")["content_id"])
    items, scores = recommender.recommend(user, 10)
    assert len(items) == 10 == len(set(items)) and not set(items) & seen
    assert scores == sorted(scores, reverse=True)
    again, _ = recommender.recommend(user, 10, exclude=items[:3])
    assert not set(again) & set(items[:3]) and again[:7] == items[3:10]


def test_an_unknown_user_gets_recommendations(recommender) -> None:
    items, scores = recommender.recommend("never-seen-user", 5)
    assert len(items) == 5 and all(np.isfinite(scores))


def test_labelled_candidates_carry_the_later_responses(recommender, split) -> None:
    rows, rate = labelled_candidates(recommender, split.holdout, negatives_per_user=3, seed=1)
    users, _ = first_queries(split.holdout)
    assert set(rows["user_id"]) <= set(users) and 0 < rate <= 1
    later = split.holdout.groupby(["user_id", "content_id"])["click"].max()
    clicked = rows[rows["click"] > 0]
    pairs = zip(clicked["user_id"], clicked["content_id"], strict=True)
    assert len(clicked) and all(later.loc[(u, c)] > 0 for u, c in pairs)
    # at most 3 sampled negatives per user beside the titles the holdout logs
    logged = split.holdout.groupby("user_id")["content_id"].nunique()
    per_user = rows.groupby("user_id").size()
    assert (per_user <= logged.reindex(per_user.index) + 3).all()


def test_two_stage_scores_add_the_weighted_item_to_item_z_to_the_log_ranker_score() -> None:
    ranker, z = np.array([0.5, 0.25, 1e-20]), np.array([1.0, -2.0, 0.0], dtype=np.float32)
    assert two_stage_scores(ranker, z, 0.0) is ranker  # blend 0: the ranker's own scores
    np.testing.assert_allclose(two_stage_scores(ranker, z, 0.3), np.log([0.5, 0.25, 1e-12]) + 0.3 * z)


def test_the_blend_is_chosen_on_the_rankers_validation_users(recommender, split, catalog, small_config) -> None:
    """A ranker with no opinion (every score alike): where the item-to-item z marks the relevant
    candidates the smallest blend that reads it wins; where it marks them wrong, the ranker alone."""
    clicks = split.train[split.train["click"] > 0]
    bundle = ModelBundle(
        recommender.spec, recommender.retrieval, recommender.ranker, small_config.retrieval, small_config.ranker
    )
    sources = Recommender(bundle, catalog=catalog, train=clicks)
    data, _ = labelled_candidates(sources, split.holdout, negatives_per_user=20, seed=1)
    flat = build_ranker(recommender.spec, small_config.ranker)
    for parameter in flat.parameters():
        torch.nn.init.zeros_(parameter)
    relevant = data["click"].to_numpy() > 0
    chosen, tried = choose_source_blend(
        flat, data.assign(source_item_to_item_z=relevant * 5.0), catalog, recommender.spec, small_config
    )
    assert chosen == BLEND_GRID[1] and tried[f"ranker.blend.{BLEND_GRID[1]:g}.ndcg@10"] == 1.0
    assert tried["ranker.blend.0.ndcg@10"] < 1.0
    chosen, _ = choose_source_blend(
        flat, data.assign(source_item_to_item_z=relevant * -5.0), catalog, recommender.spec, small_config
    )
    assert chosen == 0.0
    fixed = small_config.model_copy(update={"ranker": small_config.ranker.model_copy(update={"source_blend": 2.0})})
    assert choose_source_blend(flat, data, catalog, recommender.spec, fixed) == (2.0, {})
