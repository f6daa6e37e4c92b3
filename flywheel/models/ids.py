"""Per-user and per-item id embeddings, kept only where validation shows they help.

An id embedding memorises a user or a title; it pays where the window holds enough interactions
per id and costs where it does not (users with a handful of plays are better described by their
features and history, which generalise). :func:`select_id_vocabularies` decides on the data: it
splits the training part again (the evaluation's split, later rows held out), trains the two
towers with each choice of :data:`ID_CHOICES` on the earlier rows and keeps the one whose
retrieval ranks the held-out relevant titles best (NDCG@10 as the evaluation ranks: the titles
each user was shown where the window logs impressions, else the whole catalog). The choice and
every score go into the feature spec (``id_selection``), which the evaluation logs with the run.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from flywheel.config.training import TrainingConfig
from flywheel.evaluation.metrics import exposed_candidates, rank_flat, ranking_metrics
from flywheel.models.dataset import (
    SplitError,
    is_relevant,
    logs_impressions,
    query_rows,
    relevance_label,
    split_window,
)
from flywheel.models.encoding import FeatureSpec, encode_catalog, fit_spec
from flywheel.models.two_tower import TopKIndex, embed_users, pair_logits, train_two_tower

ID_CHOICES: tuple[tuple[str, bool, bool], ...] = (
    ("none", False, False),
    ("items", False, True),
    ("users_and_items", True, True),
)
"""(name, user ids, item ids): the vocabularies tried, simplest first (a tie keeps the simpler)."""
VALIDATION_K = 10


def _spec(train: pd.DataFrame, catalog: pd.DataFrame, config: TrainingConfig, users: bool, items: bool) -> FeatureSpec:
    return fit_spec(
        train,
        catalog,
        synopsis_buckets=config.synopsis_buckets,
        synopsis_tokens=config.synopsis_tokens,
        history_length=config.retrieval.history_length,
        user_ids=users,
        item_ids=items,
    )


def fixed_spec(train: pd.DataFrame, catalog: pd.DataFrame, config: TrainingConfig, choice: str) -> FeatureSpec:
    """The spec with the id vocabularies of ``choice`` (a name of :data:`ID_CHOICES`)."""
    _, users, items = next(c for c in ID_CHOICES if c[0] == choice)
    return _spec(train, catalog, config, users, items)


def retrieval_ndcg(
    spec: FeatureSpec, train: pd.DataFrame, holdout: pd.DataFrame, catalog: pd.DataFrame, config: TrainingConfig
) -> float:
    """NDCG@10 of the two towers trained on ``train`` with ``spec``, for each holdout user (as of the
    first held-out row) against the user's relevant held-out titles.

    Ranked as the evaluation ranks (:mod:`flywheel.evaluation.evaluate`): where the window logs
    impressions, the titles each user was shown in the holdout (the logged view; on a demo-sized
    window NDCG@10 over the whole catalog rests on a few hits, 0.006-0.018, and chose at random);
    otherwise the whole catalog. A shown title the catalog lacks ranks last.
    """
    relevance = relevance_label(pd.concat([train.head(0), holdout]), config.evaluation)
    relevant = holdout[is_relevant(holdout, relevance)]
    wanted = relevant.groupby(relevant["user_id"].astype(str))["content_id"].apply(lambda s: set(s.astype(str)))
    queries = query_rows(holdout)
    queries = queries[queries["user_id"].astype(str).isin(wanted.index)].reset_index(drop=True)
    if queries.empty:
        return float("nan")
    cat = encode_catalog(catalog, spec)
    model = train_two_tower(train, cat, spec, config.retrieval, seed=config.seed)
    users = queries["user_id"].astype(str).to_numpy(dtype=object)
    k = min(VALIDATION_K, len(cat.content_ids))
    embedded = embed_users(model, queries, spec)
    if logs_impressions(holdout):
        qidx, cids = exposed_candidates(holdout, users)
        rows = cat.rows(cids)
        logits = np.where(rows >= 0, pair_logits(model, embedded, qidx, rows, cat), -np.inf)
        top = rank_flat(qidx, cids, logits, len(users), k)
    else:
        with torch.no_grad():
            top = cat.content_ids[TopKIndex.build(model, cat).search(embedded, k)[0]]
    return ranking_metrics(list(top), [wanted[u] for u in users], (k,))[f"ndcg@{k}"]


def select_id_vocabularies(train: pd.DataFrame, catalog: pd.DataFrame, config: TrainingConfig) -> FeatureSpec:
    """The spec of ``train`` with the id vocabularies that validate best (see the module docstring).

    Falls back to ``items`` (no validation) when the training part cannot be split again.
    """
    inner_config = config.evaluation.model_copy(update={"min_holdout_users": 1})
    try:
        inner = split_window(train, config.holdout_fraction, inner_config)
    except SplitError:
        spec = fixed_spec(train, catalog, config, "items")
        return _with_selection(spec, {"chosen": 1.0, "validated": 0.0})
    scores = {
        name: retrieval_ndcg(
            _spec(inner.train, catalog, config, users, items), inner.train, inner.holdout, catalog, config
        )
        for name, users, items in ID_CHOICES
    }
    best = max(range(len(ID_CHOICES)), key=lambda i: (np.nan_to_num(scores[ID_CHOICES[i][0]], nan=-1.0), -i))
    _, users, items = ID_CHOICES[best]
    selection = {"chosen": float(best), "validated": 1.0, **{f"ndcg@{VALIDATION_K}.{n}": s for n, s in scores.items()}}
    return _with_selection(_spec(train, catalog, config, users, items), selection)


def _with_selection(spec: FeatureSpec, selection: dict[str, float]) -> FeatureSpec:
    return replace(spec, id_selection=selection)
