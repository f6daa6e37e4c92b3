"""The one-request path of the top-K function gives the batch path's answer, number for number."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from flywheel.models.bundle import ModelBundle, train_bundle
from flywheel.models.encoding import encode_ranker
from flywheel.models.sources import TieOrder, ordered_top, stable_ranks, top_found, top_mask, top_rows, top_titles
from flywheel.models.stack import Recommender
from flywheel.models.two_tower import embed_users
from tests.support.recommender import grow_catalog


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, split, catalog, small_config) -> ModelBundle:
    folder = train_bundle(split.train, catalog, small_config).save(tmp_path_factory.mktemp("bundle"))
    return ModelBundle.load(folder)


@pytest.fixture(scope="module")
def copies(catalog) -> pd.DataFrame:
    """The catalog grown with copies of its titles: equal scores in every source (ties)."""
    return grow_catalog(catalog, 3 * len(catalog), seed=3)


def _batch(recommender: Recommender, user: str, k: int, exclude: list[str], as_of_ms: int | None = None):
    """The batch path's answer to one query (recommend_many, as evaluation calls it)."""
    times = None if as_of_ms is None else np.asarray([as_of_ms], dtype=np.int64)
    ids, scores, _ = recommender.recommend_many([user], k, [exclude], as_of_ms=times)
    keep = [i for i, c in enumerate(ids[0]) if c is not None]
    return [str(ids[0][i]) for i in keep], [float(scores[0][i]) for i in keep]


def _users(split) -> list[str]:
    train = split.train
    busiest = train.groupby("user_id").size().sort_values(ascending=False).index
    return [str(u) for u in busiest[:3]] + [str(busiest[-1]), "a-user-nobody-knows"]


def _assert_same_answers(recommender: Recommender, split, k: int = 10) -> None:
    train = split.train
    for user in _users(split):
        mine = train.loc[train["user_id"].astype(str) == user, "content_id"].astype(str)
        first, _ = recommender.recommend(user, k)
        exclusions = ([], first[:3] + list(mine[:2]) + ["not-in-the-catalog"])
        for exclude in exclusions:
            items, scores = recommender.recommend(user, k, exclude)
            assert (items, scores) == _batch(recommender, user, k, exclude), (user, exclude)
            assert not set(items) & set(exclude)
    later = int(recommender.end_ms + 3 * 86_400_000)  # another request time: its own popular-now and releases
    user = _users(split)[0]
    assert recommender.recommend(user, k, as_of_ms=later) == _batch(recommender, user, k, [], later)


def test_the_request_path_gives_the_batch_answer(bundle, split, catalog) -> None:
    recommender = Recommender(bundle, catalog=catalog, train=split.train)
    _assert_same_answers(recommender, split)
    items, _ = recommender.recommend("a-user-nobody-knows", 5)
    assert len(items) == 5  # a cold start gets recommendations


def test_the_popular_now_window_reaches_back_the_same_in_both_paths(bundle, split, copies) -> None:
    """A popular-now window of a few minutes with a floor of interactions: both paths count the
    last ``popular_min_interactions`` and give the same answers (a ranker reading the sources:
    the popular-now ranks and z-scores are its inputs)."""
    update = {"popular_days": 0.001, "popular_min_interactions": 50}
    floored = replace(bundle, candidates_config=bundle.candidates_config.model_copy(update=update))
    recommender = Recommender(floored, catalog=copies, train=split.train[split.train["click"] > 0])
    assert recommender.reads_sources
    popular = recommender.request_path.time_sources(int(recommender.end_ms)).scores["popular_now"]
    assert float(np.expm1(popular).sum()) == pytest.approx(50)  # log1p of the counts of the last 50
    _assert_same_answers(recommender, split)


def test_ties_fall_the_same_way_as_in_the_batch_path(bundle, split, copies) -> None:
    recommender = Recommender(bundle, catalog=copies, train=split.train)
    request = recommender.request_path.candidates(recommender.request_path.query(_users(split)[0]), [])
    tied = request.scores["two_tower"][0, request.rows]
    assert len(np.unique(tied)) < len(tied)  # the copies score alike: the candidates hold ties
    _assert_same_answers(recommender, split, k=30)


def test_a_ranker_reading_the_sources_gets_the_batch_inputs(bundle, split, copies) -> None:
    """An imported window (clicks only): the ranker reads every source's rank, z-score and membership."""
    clicks = split.train[split.train["click"] > 0]
    recommender = Recommender(bundle, catalog=copies, train=clicks)
    assert recommender.reads_sources
    _assert_same_answers(recommender, split)
    path = recommender.request_path
    for user in _users(split):
        exclude = [str(c) for c in copies["content_id"].iloc[[1, 7, 100]]]
        times = np.asarray([recommender.end_ms], dtype=np.int64)
        queries = recommender.queries([user], times)
        scored = recommender.score(queries, times, [exclude])
        _, rows = np.nonzero(scored.candidates)
        frame = recommender.pairs(queries, scored, np.zeros(len(rows), dtype=np.int64), rows)
        expected = encode_ranker(frame, recommender.catalog, recommender.spec)
        request = path.candidates(path.query(user), exclude)
        np.testing.assert_array_equal(request.rows, rows)
        for got, name in zip(path.ranker_inputs(request), ("sparse", "dense", "history"), strict=True):
            np.testing.assert_array_equal(got, expected[name].numpy(), err_msg=name)
        features = recommender.features(scored, np.zeros(len(rows), dtype=np.int64), rows)
        for name, values in path.source_features(request).items():
            np.testing.assert_array_equal(values, features[name].to_numpy(), err_msg=name)


def test_the_item_to_item_blend_is_the_same_in_both_paths(bundle, split, copies) -> None:
    """A version trained on imported data keeps a blend > 0: both paths add it alike."""
    clicks = split.train[split.train["click"] > 0]
    blended = replace(bundle, ranker_config=bundle.ranker_config.model_copy(update={"source_blend": 1.0}))
    recommender = Recommender(blended, catalog=copies, train=clicks)
    assert recommender.blend == 1.0
    _assert_same_answers(recommender, split)
    alone = Recommender(bundle, catalog=copies, train=clicks)
    user = _users(split)[0]
    assert recommender.recommend(user, 10) != alone.recommend(user, 10)  # the blend moves the scores


def test_the_inverted_file_index_gives_both_paths_the_same_titles(bundle, split, copies) -> None:
    """A catalog searched by the inverted-file index: the request path still gives the batch answer,
    for a ranker reading the sources too (their two-tower rank and z are over the found titles)."""
    update = {"index": "ivf", "ivf_list_size": 8, "ivf_probe": 6, "ivf_depth": 12, "two_tower": 10}
    ivf = replace(bundle, candidates_config=bundle.candidates_config.model_copy(update=update))
    clicks = split.train[split.train["click"] > 0]
    for train in (split.train, clicks):
        recommender = Recommender(ivf, catalog=copies, train=train)
        path = recommender.request_path
        request = path.candidates(path.query(_users(split)[0]), [])
        if path.reads_sources:  # the ranker reads the source's rank and z over the catalog's row
            assert "two_tower" in request.scores
            assert np.isfinite(request.scores["two_tower"][0]).sum() == 12
        else:  # the candidates come from the found titles alone: no row of -inf is built
            assert path.found_index is not None and "two_tower" not in request.scores
        query = recommender.queries([_users(split)[0]], np.asarray([recommender.end_ms]))
        rows, _ = recommender.index.found_logits(embed_users(recommender.retrieval, query, recommender.spec))
        assert len(rows) == 12  # the depth of six lists of about 8 titles, of the catalog's hundreds
        _assert_same_answers(recommender, split)


def test_without_a_ranker_the_two_tower_z_orders_the_candidates(bundle, split, catalog) -> None:
    recommender = Recommender(bundle, catalog=catalog, train=split.train, ranked=False)
    _assert_same_answers(recommender, split)


def _argsort_reference(scores: np.ndarray) -> np.ndarray:
    return np.argsort(-scores, kind="stable")


def _tie_reference(scores: np.ndarray, n: int, ties: TieOrder) -> np.ndarray:
    """The ``n`` best finite titles by a full sort: score, then tie order (NaN: no opinion)."""
    down = np.where(np.isnan(scores), np.inf, -scores.astype(np.float64))
    first = np.lexsort((ties.rank, down))[:n]
    return np.sort(first[np.isfinite(scores[first])])


def test_the_sources_candidates_and_ranks_follow_the_batch_path() -> None:
    rng = np.random.default_rng(5)
    for trial in range(240):
        n_items = int(rng.integers(1, 300 if trial % 2 else 20_000))
        if trial % 3 == 0:  # a sparse source: zeros but for a few titles
            scores = np.zeros(n_items, dtype=np.float32)
            some = rng.integers(0, n_items, int(rng.integers(0, 200)))
            scores[some] = rng.standard_normal(len(some)).astype(np.float32)
        else:
            scores = rng.integers(-3, 4, n_items).astype(np.float32)  # many ties
        scores[rng.random(n_items) < 0.2] = -np.inf  # excluded, or no opinion
        scores[rng.random(n_items) < 0.1] = -0.0  # sorts as 0.0
        if trial % 5 == 0:
            scores[rng.random(n_items) < 0.05] = np.nan  # no opinion
        ties = TieOrder.by_interactions(rng.integers(0, n_items, int(rng.integers(0, 3 * n_items))), n_items)
        order = _argsort_reference(scores)
        for n in (0, 1, int(rng.integers(1, n_items + 1)), n_items + 2):
            expected = _tie_reference(scores, n, ties)
            np.testing.assert_array_equal(top_rows(scores, n, ties), expected, err_msg=f"trial {trial} n {n}")
            np.testing.assert_array_equal(np.flatnonzero(top_mask(scores[None, :], n, ties)[0]), expected)
            if not np.isnan(scores).any():
                first = order[:n]
                np.testing.assert_array_equal(top_titles(scores, n), np.sort(first[np.isfinite(scores[first])]))
        if np.isnan(scores).any():
            continue
        rank = np.empty(n_items, dtype=np.int64)
        rank[order] = np.arange(n_items)
        rows = rng.integers(0, n_items, 12)
        np.testing.assert_array_equal(stable_ranks(scores, rows), rank[rows])
        np.testing.assert_array_equal(stable_ranks(scores.astype(np.float64), rows), rank[rows])


def test_the_found_titles_alone_give_the_candidates_of_their_row() -> None:
    """An inverted-file index's found titles (the only finite scores of the source's row): their
    best, minus the excluded, ties in tie order, are the row's candidates."""
    rng = np.random.default_rng(9)
    for trial in range(300):
        n_items = int(rng.integers(1, 300 if trial % 2 else 5_000))
        rows = rng.choice(n_items, int(rng.integers(0, min(n_items, 400) + 1)), replace=False)
        values = rng.integers(-3, 4, len(rows)).astype(np.float32)  # many ties
        if trial % 4 == 0:
            values = rng.standard_normal(len(rows)).astype(np.float32)
        ties = TieOrder.by_interactions(rng.integers(0, n_items, int(rng.integers(0, 3 * n_items))), n_items)
        excluded = np.unique(rng.integers(0, n_items, int(rng.integers(0, 60))))
        masked = np.full(n_items, -np.inf, dtype=np.float32)
        masked[rows] = values
        masked[excluded] = -np.inf
        for n in (0, 1, int(rng.integers(1, n_items + 1)), len(rows), n_items + 2):
            got = top_found(rows, values, excluded, n, ties)
            np.testing.assert_array_equal(got, top_rows(masked, n, ties), err_msg=f"trial {trial} n {n}")


def test_ties_at_the_cut_go_to_the_most_watched_titles() -> None:
    """A sparse source proposes its few titles, then the titles the data holds most interactions with."""
    counts = np.array([0, 5, 1, 9, 0, 2, 7, 3])
    ties = TieOrder.by_interactions(np.repeat(np.arange(8), counts), 8)
    scores = np.array([0, 0, 0, 0, 0.4, 0, 0, 0], dtype=np.float32)
    np.testing.assert_array_equal(top_rows(scores, 3, ties), [3, 4, 6])  # 0.4, then 9 and 7 interactions
    scores[3] = -np.inf  # excluded: the next most watched
    np.testing.assert_array_equal(top_rows(scores, 3, ties), [1, 4, 6])
    np.testing.assert_array_equal(np.flatnonzero(top_mask(scores[None, :], 3, ties)[0]), [1, 4, 6])
    order = ties.scores_order(np.where(np.isfinite(scores), scores, -np.inf))
    np.testing.assert_array_equal(ordered_top(scores, order, np.array([3]), 3), [1, 4, 6])
    alike = TieOrder.by_interactions(np.zeros(0, dtype=np.int64), 8)  # no interactions: catalog order
    np.testing.assert_array_equal(top_rows(np.zeros(8, dtype=np.float32), 3, alike), [0, 1, 2])


def test_the_kept_order_gives_the_candidates_under_exclusions() -> None:
    """Time-only sources: the first titles of the kept order, minus the excluded, are the masked
    scores' candidates."""
    rng = np.random.default_rng(8)
    for trial in range(300):
        n_items = int(rng.integers(1, 300 if trial % 2 else 5_000))
        if trial % 3 == 0:  # popular now: zeros but for a few titles
            scores = np.zeros(n_items, dtype=np.float32)
            some = rng.integers(0, n_items, int(rng.integers(0, 100)))
            scores[some] = np.log1p(rng.integers(1, 5, len(some))).astype(np.float32)
        else:  # new releases: -inf but for a few, with ties
            scores = np.where(rng.random(n_items) < 0.3, rng.integers(0, 6, n_items), -np.inf).astype(np.float32)
        ties = TieOrder.by_interactions(rng.integers(0, n_items, n_items), n_items)
        order = ties.scores_order(scores)
        excluded = np.unique(rng.integers(0, n_items, int(rng.integers(0, 40))))
        masked = scores.copy()
        masked[excluded] = -np.inf
        for n in (0, 1, int(rng.integers(1, n_items + 1)), n_items, n_items + 2):
            got = ordered_top(scores, order, excluded, n)
            np.testing.assert_array_equal(got, top_rows(masked, n, ties), err_msg=f"trial {trial} n {n}")


def test_item_to_item_candidates_from_the_models_titles_are_the_catalogs(bundle, split, copies) -> None:
    """Cuts above the zeros and in them (read from the model's titles) give the catalog's answer."""
    recommender = Recommender(bundle, catalog=copies, train=split.train)
    path = recommender.request_path
    rng = np.random.default_rng(4)
    users = _users(split) + [str(u) for u in split.train["user_id"].unique()[:20]]
    checked_above = checked_zeros = 0
    for user in users:
        exclude = [str(c) for c in copies["content_id"].iloc[rng.integers(0, len(copies), 5)]]
        request = path.candidates(path.query(user), exclude)
        values = request.masked("item_to_item")[0]
        for n in (1, 2, 3, 5, 8, 13, 40, 100, len(values) - 1):
            expected = top_rows(values, n, path.ties)
            np.testing.assert_array_equal(path._item_to_item_top(request, n), expected, err_msg=f"{user} n={n}")
            checked_above += bool(len(expected)) and bool(values[expected].min() > 0)
            checked_zeros += bool(len(expected)) and bool(values[expected].min() == 0)
    assert checked_above > 10  # cuts above the zeros
    assert checked_zeros > 10  # cuts among the zeros, read in tie order
