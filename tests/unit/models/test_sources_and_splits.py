"""Candidate sources (EASE, popular now, new releases), the evaluation splits and relevance rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flywheel.config.recommender import EvaluationConfig
from flywheel.config.training import PromotionConfig
from flywheel.evaluation.gate import promotion_gate
from flywheel.models.dataset import SplitError, is_relevant, per_user_split, relevance_label, split_window
from flywheel.models.sources import (
    DAY_MS,
    fit_ease,
    interaction_matrix,
    item_to_item_scores,
    new_release_scores,
    recent_counts,
    release_age_days,
)

IDS = np.array(["a", "b", "c", "d"], dtype=object)


def test_ease_is_the_closed_form() -> None:
    x = interaction_matrix(np.array([0, 0, 1, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 1, 2]), 3, 4)
    model = fit_ease(x, IDS, lam=1.0)
    dense = x.toarray().astype(float)[:, :3]
    p = np.linalg.inv(dense.T @ dense + np.eye(3))
    expected = np.eye(3) - p / np.diag(p)
    assert list(model.content_ids) == ["a", "b", "c"]  # d has no interaction (min_support 1)
    assert np.allclose(model.weights, expected - np.diag(np.diag(expected)), atol=1e-5)
    columns, weights = model.restricted(pd.Index(IDS))
    scores = item_to_item_scores(x, columns, weights)
    assert scores.shape == (3, 4) and (scores[:, 3] == 0).all()
    assert np.allclose(scores[:, :3], dense @ model.weights, atol=1e-5)
    # another catalog (b gone, an unknown title added): the model keeps the titles both know
    columns, weights = model.restricted(pd.Index(["c", "x", "a"]))
    assert columns.tolist() == [2, 0] and np.allclose(weights, model.weights[np.ix_([0, 2], [0, 2])])


def test_ease_keeps_the_most_supported_items() -> None:
    x = interaction_matrix(np.array([0, 1, 2, 0, 1, 0]), np.array([0, 0, 0, 1, 1, 2]), 3, 3)
    assert list(fit_ease(x, IDS[:3], lam=1.0, min_support=2).content_ids) == ["a", "b"]
    assert list(fit_ease(x, IDS[:3], lam=1.0, max_items=1).content_ids) == ["a"]
    with pytest.raises(ValueError, match="no title has 9 interactions"):
        fit_ease(x, IDS[:3], lam=1.0, min_support=9)


def test_popular_now_counts_only_the_window_before_the_query() -> None:
    times = np.array([0, 5, 9, 10, 11]) * DAY_MS
    rows = np.array([0, 1, 1, 2, 2])
    assert recent_counts(times, rows, 3, 10 * DAY_MS, days=5).tolist() == [0.0, 2.0, 0.0]  # days 5..9
    assert recent_counts(times, rows, 3, 12 * DAY_MS, days=30).tolist() == [1.0, 2.0, 2.0]


def test_popular_now_window_reaches_back_to_its_fewest_interactions() -> None:
    times = np.array([0, 5, 9, 10, 11]) * DAY_MS
    rows = np.array([0, 1, 1, 2, 2])
    # days 9..11 hold one interaction before day 10: the window reaches back to the last three
    assert recent_counts(times, rows, 3, 10 * DAY_MS, days=1, min_interactions=3).tolist() == [1.0, 2.0, 0.0]
    assert recent_counts(times, rows, 3, 10 * DAY_MS, days=1, min_interactions=2).tolist() == [0.0, 2.0, 0.0]
    # a window that holds enough is left as it is; fewer interactions than asked: all of them
    assert recent_counts(times, rows, 3, 10 * DAY_MS, days=5, min_interactions=1).tolist() == [0.0, 2.0, 0.0]
    assert recent_counts(times, rows, 3, 10 * DAY_MS, days=1, min_interactions=50).tolist() == [1.0, 2.0, 0.0]
    # never anything at or after the query
    assert recent_counts(times, rows, 3, 0, days=1, min_interactions=50).tolist() == [0.0, 0.0, 0.0]


def test_new_releases_are_recent_and_released() -> None:
    ages = release_age_days(np.array([0.0, 90.0, 99.0, 120.0, np.nan]) * DAY_MS, 100 * DAY_MS)
    assert ages[:4].tolist() == [100.0, 10.0, 1.0, -20.0]
    scores = new_release_scores(ages, np.array([0.0, 5.0, 0.0, 9.0, 9.0]), days=30)
    assert np.isneginf(scores[[0, 3, 4]]).all()  # too old, not yet released, unknown date
    assert scores[1] > scores[2]  # played more recently beats newer


def _window(rows: list[tuple[str, str, int, int]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user_id", "content_id", "day", "click"])
    frame["event_timestamp"] = pd.to_datetime(frame["day"] * DAY_MS, unit="ms", utc=True)
    for label in ("watch_50", "complete", "like", "add_to_list"):
        frame[label] = 0
    return frame.drop(columns="day")


def test_per_user_split_holds_out_each_users_last_interactions() -> None:
    rows = [("a", f"i{d}", d, 1) for d in range(6)] + [("b", "i0", 1, 1), ("b", "i1", 2, 1), ("b", "i2", 3, 1)]
    split = per_user_split(_window(rows), 2)
    assert sorted(split.holdout["content_id"]) == ["i4", "i5"]  # only a has 2 x 2 interactions
    assert len(split.train) == 7 and split.cutoff == pd.Timestamp(4 * DAY_MS, unit="ms", tz="UTC")


def test_too_few_users_for_the_split_is_an_error_with_the_numbers() -> None:
    rows = [("a", f"i{d}", d, 1) for d in range(10)]
    config = EvaluationConfig(split="time_cut", min_holdout_users=2)
    with pytest.raises(SplitError, match=r"leaves 1 user\(s\) with a relevant held-out item .* needs 2"):
        split_window(_window(rows), 0.2, config)
    with pytest.raises(SplitError, match="no user has the 40 interactions"):
        split_window(_window(rows), 0.2, EvaluationConfig(split="per_user", per_user_holdout=20))


def test_relevance_rules() -> None:
    imported = _window([("a", "i1", 1, 1), ("a", "i2", 2, 1)])
    imported.loc[1, "like"] = 1
    logged = _window([("a", "i1", 1, 0), ("a", "i2", 2, 1)])
    logged.loc[1, "watch_50"] = 1
    assert relevance_label(imported, EvaluationConfig()) == "any"
    assert relevance_label(logged, EvaluationConfig()) == "watch_50"
    assert is_relevant(imported, "any").tolist() == [True, True]
    assert is_relevant(imported, "like").tolist() == [False, True]
    assert is_relevant(logged, "any").tolist() == [False, True]


def test_gate_reads_the_catalog_view_for_imported_data() -> None:
    metrics = {f"heads.{h}.ece": 0.0 for h in ("click", "watch_50", "complete", "like", "add_to_list")}
    metrics |= {"latency.ranker_p99_ms": 1.0, "view.logged": 0.0}
    metrics |= {"catalog.two_stage.ndcg@10": 0.2, "catalog.popularity.ndcg@10": 0.1}
    assert promotion_gate(metrics, PromotionConfig()).passed
    worse = {**metrics, "catalog.two_stage.ndcg@10": 0.05}
    decision = promotion_gate(worse, PromotionConfig())
    assert not decision.passed and "catalog.two-stage NDCG@10 0.0500 < 1.0 x popularity 0.1000" in decision.summary()
    champion = {**metrics, "catalog.champion.two_stage.ndcg@10": 0.3}
    assert "does not beat the champion's 0.3000" in promotion_gate(champion, PromotionConfig()).summary()
