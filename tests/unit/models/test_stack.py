"""The one top-K function: several sources, one ranker; its contract and its training data."""

from __future__ import annotations

import numpy as np
import pytest

from flywheel.models.bundle import ModelBundle, train_bundle
from flywheel.models.stack import Recommender, first_queries, interest_rows, labelled_candidates


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
