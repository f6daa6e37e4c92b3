"""In-batch softmax with logQ correction, the exact index, and the cold-start path."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from flywheel.models.encoding import encode_catalog, fit_spec
from flywheel.models.two_tower import TopKIndex, embed_users, in_batch_softmax_loss, train_two_tower


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
