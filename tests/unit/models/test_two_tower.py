"""In-batch softmax with logQ correction, the exact and inverted-file indexes, and the cold-start path."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from flywheel.config.recommender import CandidatesConfig
from flywheel.models.encoding import encode_catalog, fit_spec
from flywheel.models.two_tower import (
    IvfIndex,
    TopKIndex,
    catalog_index,
    embed_users,
    in_batch_softmax_loss,
    train_two_tower,
)


def test_logq_correction_subtracts_log_sampling_probability() -> None:
    u = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    ids = torch.tensor([0, 1])
    plain = in_batch_softmax_loss(u, v, None, ids, temperature=1.0)
    # logits [[1, 0], [0, 1]]: loss = -log(e / (e + 1))
    assert plain.item() == pytest.approx(-math.log(math.e / (math.e + 1)), rel=1e-6)
    log_q = torch.log(torch.tensor([0.9, 0.1]))
    corrected = in_batch_softmax_loss(u, v, log_q, ids, temperature=1.0)
    # corrected logits: row 0 [1 - ln .9, 0 - ln .1], row 1 [1 ... ] -> computed by hand
    l00, l01 = 1 - math.log(0.9), -math.log(0.1)
    l10, l11 = -math.log(0.9), 1 - math.log(0.1)
    expected = 0.5 * (
        -(l00 - math.log(math.exp(l00) + math.exp(l01))) - (l11 - math.log(math.exp(l10) + math.exp(l11)))
    )
    assert corrected.item() == pytest.approx(expected, rel=1e-6)


def test_repeated_items_are_not_negatives_of_each_other() -> None:
    u = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    v = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    loss = in_batch_softmax_loss(u, v, None, torch.tensor([3, 3]), temperature=1.0)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_index_is_exact() -> None:
    emb = torch.nn.functional.normalize(torch.randn(50, 8), dim=1)
    index = TopKIndex(np.array([f"c{i}" for i in range(50)], dtype=object), emb)
    query = emb[[7, 21]]
    rows, scores = index.search(query, 3)
    assert rows[:, 0].tolist() == [7, 21]
    brute = np.argsort(-(query @ emb.T).numpy(), axis=1)[:, :3]
    assert (rows == brute).all()


def _clustered(n: int, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unit item embeddings around 40 topics, their biases, and 40 users who each like a topic."""
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((40, dim))

    def around(centres: np.ndarray, spread: float) -> torch.Tensor:
        points = centres + spread * rng.standard_normal(centres.shape)
        return torch.nn.functional.normalize(torch.from_numpy(points.astype(np.float32)), dim=1)

    emb = around(topics[rng.integers(0, 40, n)], 0.5)
    bias = torch.from_numpy((0.3 * rng.standard_normal(n)).astype(np.float32))
    return np.array([f"c{i}" for i in range(n)], dtype=object), emb, bias, around(topics, 0.3)


def _recall(got: np.ndarray, want: np.ndarray, top: int) -> float:
    """The share of each query's ``top`` best titles (``want``) among the ``top`` best of ``got``."""
    pairs = zip(np.argsort(-got, axis=1)[:, :top], np.argsort(-want, axis=1)[:, :top], strict=True)
    return float(np.mean([len(set(g) & set(w)) / top for g, w in pairs]))


def test_the_inverted_file_index_finds_the_exact_top_titles() -> None:
    ids, emb, bias, users = _clustered(6000)
    exact = TopKIndex(ids, emb, bias, temperature=0.1)
    index = IvfIndex(TopKIndex(ids, emb, bias, temperature=0.1), lists=40, probe=10, depth=200)
    got, want = index.scores(users).numpy(), exact.scores(users).numpy()
    found = np.isfinite(got)
    assert (found.sum(1) == 200).all()  # each query keeps its depth, every other title is left out
    np.testing.assert_allclose(got[found], want[found], rtol=1e-5, atol=1e-5)  # the found titles' exact logits
    recall = _recall(got, want, 50)
    assert recall > 0.9, recall  # a quarter of the lists holds nearly all of a user's 50 best
    assert (
        _recall(
            IvfIndex(TopKIndex(ids, emb, bias, temperature=0.1), lists=40, probe=1, depth=200).scores(users).numpy(),
            want,
            50,
        )
        < recall
    )
    every = IvfIndex(TopKIndex(ids, emb, bias, temperature=0.1), lists=40, probe=40, depth=200)  # every list: exact
    assert _recall(every.scores(users).numpy(), want, 50) == 1.0


def test_a_query_gets_the_same_numbers_alone_and_in_a_batch() -> None:
    """The batch path and the request path share the index's answer bit for bit."""
    ids, emb, bias, users = _clustered(3000, seed=2)
    index = IvfIndex(TopKIndex(ids, emb, bias, temperature=0.1), lists=12, probe=3, depth=100)
    batch = index.scores(users).numpy()
    for q in range(len(users)):
        np.testing.assert_array_equal(index.scores(users[q : q + 1]).numpy()[0], batch[q])


def test_the_index_is_exact_below_the_configured_size(split, catalog, small_config) -> None:
    spec = fit_spec(split.train, catalog, history_length=10)
    cat = encode_catalog(catalog, spec)
    model = train_two_tower(split.train, cat, spec, small_config.retrieval, seed=0)
    config = CandidatesConfig(two_tower=10)
    assert type(catalog_index(model, cat, config)) is TopKIndex  # auto, a small catalog
    small = config.model_copy(update={"ivf_min_titles": len(catalog), "ivf_list_size": 8, "ivf_depth": 5})
    index = catalog_index(model, cat, small)
    assert isinstance(index, IvfIndex)
    assert index.lists == round(len(catalog) / 8)
    assert index.depth == 10  # never fewer titles than the source's candidates
    assert type(catalog_index(model, cat, small.model_copy(update={"index": "exact"}))) is TopKIndex


def test_new_items_are_scored_from_content(world, split, catalog, small_config) -> None:
    spec = fit_spec(split.train, catalog, history_length=10)
    cat = encode_catalog(catalog, spec)
    model = train_two_tower(split.train, cat, spec, small_config.retrieval, seed=0)
    new = ~catalog["content_id"].isin(set(split.train["content_id"]))
    assert new.sum() >= 3  # the world releases items after the training part
    assert (cat.item_idx[torch.from_numpy(new.to_numpy())] == 0).all()  # unknown id: content only
    queries = split.holdout.groupby("user_id").head(1)
    scores = TopKIndex.build(model, cat).scores(embed_users(model, queries, spec)).numpy()[:, new.to_numpy()]
    truth = world.true_affinity(queries["user_id"].to_numpy(), catalog.loc[new, "content_id"].to_numpy())
    rho = spearmanr(scores.ravel(), truth.ravel()).statistic  # pooled: a user sees only a few new titles
    assert rho > 0.15, rho


def test_positive_label_chooses_the_training_pairs(split, catalog, small_config) -> None:
    from flywheel.config.training import RetrievalConfig

    spec = fit_spec(split.train, catalog, history_length=10)
    cat = encode_catalog(catalog, spec)
    no_watch = split.train.assign(watch_50=0)
    with pytest.raises(ValueError, match="no watch_50"):
        train_two_tower(no_watch, cat, spec, small_config.retrieval.model_copy(update={"positive_label": "watch_50"}))
    train_two_tower(no_watch, cat, spec, small_config.retrieval)  # clicks by default
    with pytest.raises(ValueError, match="positive_label"):
        RetrievalConfig(positive_label="watched")
