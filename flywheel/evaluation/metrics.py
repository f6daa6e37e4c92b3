"""Pure metric functions: classification quality per head and ranking quality at K, and the
logged view's candidates (what each user was shown) ranked by any score.

Every function takes plain arrays and returns plain floats (or small dataclasses), so that
the unit tests can pin exact values on hand-computed cases.
"""

from __future__ import annotations

import math
from collections.abc import Sequence, Set
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata


def roc_auc(labels: Sequence[float] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve (ties count one half); NaN when one class is absent."""
    y = np.asarray(labels, dtype=float) > 0
    s = np.asarray(scores, dtype=float)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def pr_auc(labels: Sequence[float] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Area under the precision-recall curve as average precision (step-wise, ties grouped)."""
    y = np.asarray(labels, dtype=float) > 0
    s = np.asarray(scores, dtype=float)
    n_pos = int(y.sum())
    if n_pos == 0:
        return math.nan
    order = np.argsort(-s, kind="stable")
    y, s = y[order], s[order]
    tp = np.cumsum(y)
    # evaluate only at the last index of each group of tied scores
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    precision = tp[last] / (last + 1)
    recall = tp[last] / n_pos
    prev_recall = np.r_[0.0, recall[:-1]]
    return float(np.sum((recall - prev_recall) * precision))


def log_loss(labels: Sequence[float] | np.ndarray, probs: Sequence[float] | np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy (natural log), probabilities clipped to [eps, 1 - eps]."""
    y = np.asarray(labels, dtype=float)
    p = np.clip(np.asarray(probs, dtype=float), eps, 1 - eps)
    if len(y) == 0:
        return math.nan
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


@dataclass(frozen=True)
class Calibration:
    """A reliability curve (equal-width bins over [0, 1]) and its expected calibration error."""

    bin_edges: tuple[float, ...]
    mean_predicted: tuple[float, ...]
    observed_rate: tuple[float, ...]
    counts: tuple[int, ...]
    ece: float


def calibration(
    labels: Sequence[float] | np.ndarray, probs: Sequence[float] | np.ndarray, bins: int = 10
) -> Calibration:
    """Reliability curve and ECE = sum over bins of (n_b / n) * |mean p - observed rate|.

    Empty bins are reported with NaN means and count 0 and do not contribute.
    """
    y = np.asarray(labels, dtype=float)
    p = np.asarray(probs, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1], right=False), 0, bins - 1)
    mean_p, rate, counts = [], [], []
    ece = 0.0
    for b in range(bins):
        mask = which == b
        n = int(mask.sum())
        counts.append(n)
        if n == 0:
            mean_p.append(math.nan)
            rate.append(math.nan)
            continue
        mp, r = float(p[mask].mean()), float(y[mask].mean())
        mean_p.append(mp)
        rate.append(r)
        ece += n / len(p) * abs(mp - r)
    return Calibration(tuple(edges.tolist()), tuple(mean_p), tuple(rate), tuple(counts), float(ece))


def recall_at_k(ranked: Sequence[object], relevant: Set[object], k: int) -> float:
    """Share of the relevant items found in the top ``k`` (NaN when nothing is relevant)."""
    if not relevant:
        return math.nan
    return len(set(list(ranked)[:k]) & relevant) / len(relevant)


def ndcg_at_k(ranked: Sequence[object], relevant: Set[object], k: int) -> float:
    """Binary-gain NDCG@k: DCG = sum 1/log2(rank + 1) over hits; ideal = all relevant first."""
    if not relevant:
        return math.nan
    dcg = sum(1.0 / math.log2(i + 2) for i, item in enumerate(list(ranked)[:k]) if item in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return dcg / ideal


def average_precision_at_k(ranked: Sequence[object], relevant: Set[object], k: int) -> float:
    """AP@k: mean of precision@i at each hit i <= k, divided by min(|relevant|, k)."""
    if not relevant:
        return math.nan
    hits, total = 0, 0.0
    for i, item in enumerate(list(ranked)[:k]):
        if item in relevant:
            hits += 1
            total += hits / (i + 1)
    return total / min(len(relevant), k)


def reciprocal_rank(ranked: Sequence[object], relevant: Set[object]) -> float:
    """1 / rank of the first relevant item (0 when none is ranked; NaN when nothing is relevant)."""
    if not relevant:
        return math.nan
    for i, item in enumerate(ranked):
        if item in relevant:
            return 1.0 / (i + 1)
    return 0.0


def precision_at_k(ranked: Sequence[object], relevant: Set[object], k: int) -> float:
    """Share of the first ``k`` slots holding a relevant item (an empty slot counts as a miss)."""
    return sum(1 for item in list(ranked)[:k] if item is not None and item in relevant) / k


def ranking_metrics(
    rankings: Sequence[Sequence[object]],
    relevant: Sequence[Set[object]],
    ks: Sequence[int],
) -> dict[str, float]:
    """Mean precision@K, recall@K, NDCG@K, MAP@K over queries with at least one relevant item, and MRR.

    Returns:
        Keys ``precision@K``, ``recall@K``, ``ndcg@K``, ``map@K`` for each K, ``mrr`` and ``queries``.
    """
    pairs = [(r, rel) for r, rel in zip(rankings, relevant, strict=True) if rel]
    out: dict[str, float] = {"queries": float(len(pairs))}
    if not pairs:
        return out
    for k in ks:
        out[f"precision@{k}"] = float(np.mean([precision_at_k(r, rel, k) for r, rel in pairs]))
        out[f"recall@{k}"] = float(np.mean([recall_at_k(r, rel, k) for r, rel in pairs]))
        out[f"ndcg@{k}"] = float(np.mean([ndcg_at_k(r, rel, k) for r, rel in pairs]))
        out[f"map@{k}"] = float(np.mean([average_precision_at_k(r, rel, k) for r, rel in pairs]))
    out["mrr"] = float(np.mean([reciprocal_rank(r, rel) for r, rel in pairs]))
    return out


def matrix_ranking_metrics(top: np.ndarray, relevant: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """Mean recall@K and binary NDCG@K from dense arrays (the same definitions as above).

    Args:
        top: [Q, >= max(ks)] column indices of each query's ranked items, best first.
        relevant: [Q, N] boolean relevance of every item for every query.
        ks: Cut-offs.

    Returns:
        ``recall@K`` and ``ndcg@K`` averaged over queries with at least one relevant item, and
        ``queries``.
    """
    counts = relevant.sum(axis=1)
    keep = counts > 0
    out: dict[str, float] = {"queries": float(keep.sum())}
    if not keep.any():
        return out
    hits = np.take_along_axis(relevant[keep], top[keep], axis=1).astype(float)
    counts = counts[keep]
    discount = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    ideal_cum = np.cumsum(discount)
    for k in ks:
        dcg = (hits[:, :k] * discount[:k]).sum(axis=1)
        ideal = ideal_cum[np.minimum(counts, k) - 1]
        out[f"recall@{k}"] = float(np.mean(hits[:, :k].sum(axis=1) / counts))
        out[f"ndcg@{k}"] = float(np.mean(dcg / ideal))
    return out


def graded_ndcg(top: np.ndarray, gains: np.ndarray, ks: Sequence[int]) -> dict[int, float]:
    """Mean NDCG@K with graded gains (e.g. probabilities of relevance), from dense arrays.

    Args:
        top: [Q, >= max(ks)] column indices of each query's ranked items, best first.
        gains: [Q, N] gain of every item for every query (every query needs a positive gain).
        ks: Cut-offs.

    Returns:
        K -> mean over queries of DCG@K / ideal DCG@K (the ideal orders the gains themselves).
    """
    kmax = max(ks)
    discount = 1.0 / np.log2(np.arange(2, kmax + 2))
    dcg = np.cumsum(np.take_along_axis(gains, top[:, :kmax], axis=1) * discount, axis=1)
    ideal = np.cumsum(-np.sort(-gains, axis=1)[:, :kmax] * discount, axis=1)
    return {k: float(np.mean(dcg[:, k - 1] / ideal[:, k - 1])) for k in ks}


def head_metrics(labels: np.ndarray, probs: np.ndarray, bins: int = 10) -> dict[str, float]:
    """AUC, PR-AUC, log loss, ECE, base rate and mean prediction of one head."""
    return {
        "auc": roc_auc(labels, probs),
        "pr_auc": pr_auc(labels, probs),
        "log_loss": log_loss(labels, probs),
        "ece": calibration(labels, probs, bins).ece,
        "base_rate": float(np.mean(labels)) if len(labels) else math.nan,
        "mean_pred": float(np.mean(probs)) if len(probs) else math.nan,
    }


def exposed_candidates(holdout: pd.DataFrame, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The items each query user was shown in the holdout, flat: (query index, content id).

    Each user's items are distinct and in content-id order (not the logged order), so a ranker
    that ties gains nothing from where the logging policy put an item.
    """
    shown = holdout[["user_id", "content_id"]].astype(str).drop_duplicates()
    pos = pd.Series(np.arange(len(users)), index=pd.Index(users))
    shown = shown[shown["user_id"].isin(pos.index)]
    shown = shown.assign(q=pos.reindex(shown["user_id"]).to_numpy()).sort_values(["q", "content_id"], kind="stable")
    return shown["q"].to_numpy(dtype=np.int64), shown["content_id"].to_numpy(dtype=object)


def rank_flat(query_index: np.ndarray, content_ids: np.ndarray, scores: np.ndarray, queries: int, k: int) -> np.ndarray:
    """Top-``k`` content ids per query from flat (query, item, score) triples, best first.

    Ties keep the given order of the items; a query with fewer than ``k`` items is padded with
    None (never relevant). Returns a [queries, k] object array.
    """
    order = np.lexsort((-np.asarray(scores, dtype=float), query_index))
    q, ids = query_index[order], np.asarray(content_ids, dtype=object)[order]
    first = np.searchsorted(q, np.arange(queries), side="left")
    rank = np.arange(len(q)) - first[q]
    out = np.full((queries, k), None, dtype=object)
    keep = rank < k
    out[q[keep], rank[keep]] = ids[keep]
    return out
