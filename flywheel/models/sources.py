"""Candidate sources over the catalog: item-to-item (EASE), popular now, new releases.

Each source scores every catalog title for a user (a dense row per user, in catalog order), so
that the ranker can read any source's score of any (user, title) pair, and each source's top
titles are its candidates. The two-tower retrieval is the fourth source
(:mod:`flywheel.models.two_tower`); :mod:`flywheel.models.stack` merges them.

EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019) is the closed-form
item-item model: with the user x item interaction matrix X and G = X^T X + lambda I,
P = G^-1, the weights are B = I - P / diag(P) (zero diagonal), and a user's scores are x_u B.
It is a few lines of numpy (no maintained library installs with this project's pins) and one
of the strongest baselines on public benchmarks; it is dense (items x items float32), so it is
kept to the ``ease_max_items`` most interacted titles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

DAY_MS = 86_400_000
_SAMPLE_STRIDE = 64


def interaction_matrix(
    users: np.ndarray, rows: np.ndarray, n_users: int, n_items: int, *, weights: np.ndarray | None = None
) -> sparse.csr_matrix:
    """The binary (or weighted, max-combined) user x item matrix of (user index, catalog row) pairs."""
    data = np.ones(len(rows), dtype=np.float32) if weights is None else np.asarray(weights, dtype=np.float32)
    matrix = sparse.coo_matrix((data, (users, rows)), shape=(n_users, n_items)).tocsr()
    matrix.sum_duplicates()
    matrix.data = np.minimum(matrix.data, 1.0) if weights is None else matrix.data
    return matrix


@dataclass
class ItemToItem:
    """EASE weights (``weights``: [m, m], zero diagonal) over the titles ``content_ids``."""

    content_ids: np.ndarray
    weights: np.ndarray

    def restricted(self, catalog_ids: pd.Index) -> tuple[np.ndarray, np.ndarray]:
        """The catalog columns of the model's titles that ``catalog_ids`` has, and the weights among them."""
        cols = catalog_ids.get_indexer(self.content_ids.astype(str))
        keep = cols >= 0
        weights = self.weights if keep.all() else self.weights[np.ix_(keep, keep)]
        return cols[keep], weights

    def save(self, path: str | Path) -> None:
        """Write the weights (``.npz``)."""
        np.savez_compressed(path, content_ids=self.content_ids.astype(str), weights=self.weights)

    @classmethod
    def load(cls, path: str | Path) -> ItemToItem:
        """Read weights written by :meth:`save`."""
        with np.load(path) as data:
            return cls(data["content_ids"].astype(str), data["weights"])


def item_to_item_scores(history: sparse.csr_matrix, columns: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """EASE scores [U, N] of every catalog title for users given as rows of ``history`` (binary,
    catalog columns), with the model restricted to ``columns`` (see :meth:`ItemToItem.restricted`);
    other titles score 0."""
    out = np.zeros(history.shape, dtype=np.float32)
    out[:, columns] = np.asarray(history[:, columns] @ weights, dtype=np.float32)
    return out


def fit_ease(
    matrix: sparse.csr_matrix, content_ids: np.ndarray, *, lam: float, min_support: int = 1, max_items: int = 5000
) -> ItemToItem:
    """Fit EASE on a binary user x item matrix.

    Args:
        matrix: [users, catalog items], 1 where the user showed interest.
        content_ids: The ids of the matrix's columns.
        lam: The L2 weight (the diagonal added to the Gram matrix).
        min_support: Items with fewer interactions are left out.
        max_items: At most this many items (the most interacted) are kept.

    Raises:
        ValueError: No item has enough interactions.
    """
    support = np.asarray(matrix.sum(axis=0)).ravel()
    keep = np.flatnonzero(support >= min_support)
    if len(keep) > max_items:
        keep = np.sort(keep[np.argsort(-support[keep], kind="stable")[:max_items]])
    if len(keep) == 0:
        raise ValueError(f"item-to-item: no title has {min_support} interactions")
    x = matrix[:, keep].astype(np.float32)
    gram = np.asarray((x.T @ x).todense(), dtype=np.float32)
    gram[np.diag_indices_from(gram)] += lam
    precision = np.linalg.inv(gram)  # float32: half the time and memory of float64, ample for EASE
    weights = -precision / np.diag(precision)
    weights[np.diag_indices_from(weights)] = 0.0
    return ItemToItem(np.asarray(content_ids, dtype=object)[keep].astype(str), weights.astype(np.float32))


def recent_counts(times_ms: np.ndarray, rows: np.ndarray, n_items: int, as_of_ms: int, days: float) -> np.ndarray:
    """Interactions per catalog row in ``[as_of - days, as_of)`` (``times_ms`` sorted ascending)."""
    lo = int(np.searchsorted(times_ms, as_of_ms - int(days * DAY_MS), side="left"))
    hi = int(np.searchsorted(times_ms, as_of_ms, side="left"))
    return np.bincount(rows[lo:hi], minlength=n_items).astype(np.float32)


def release_age_days(release_ms: np.ndarray, as_of_ms: int) -> np.ndarray:
    """Days since each title's release at ``as_of`` (NaN when unknown; negative: not yet released)."""
    return (as_of_ms - release_ms.astype(float)) / DAY_MS


def new_release_scores(age_days: np.ndarray, recent: np.ndarray, days: float) -> np.ndarray:
    """The new-releases source: titles released within ``days`` (and not in the future), most played
    recently first, then the newest; every other title scores -inf."""
    fresh = (age_days >= 0) & (age_days <= days)
    score = np.log1p(recent) + 1.0 - np.nan_to_num(age_days, nan=days) / (days + 1.0)
    return np.where(fresh, score, -np.inf).astype(np.float32)


def catalog_release_ms(catalog: pd.DataFrame) -> np.ndarray:
    """Release times of the catalog's titles in ms (NaN when unknown), in catalog order."""
    stamps = pd.to_datetime(catalog["release_ts"], utc=True)
    out = (stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(milliseconds=1)
    return out.to_numpy(dtype=float, na_value=np.nan)


def _bound(down: np.ndarray, n: int) -> Any:
    """A value that a few times ``n`` of ``down`` reach (so the ``n`` smallest are at or below it),
    found from every 64th value."""
    sample = down[::_SAMPLE_STRIDE]
    place = min(len(sample) - 1, 2 * n // _SAMPLE_STRIDE + 2)
    return np.partition(sample, place)[place]


def top_titles(scores: np.ndarray, n: int) -> np.ndarray:
    """A source's candidates: the catalog rows of its ``n`` highest finite ``scores`` ([N]), ties
    broken by catalog order - the finite titles among the first ``n`` of
    ``np.argsort(-scores, kind="stable")`` - in catalog order. A title is a candidate exactly when its
    stable rank is below ``n`` (the ``source_*_in`` feature). One sort of the values, no index sort."""
    if n <= 0 or not len(scores):
        return np.zeros(0, dtype=np.int64)
    if n >= len(scores):
        return np.flatnonzero(np.isfinite(scores))
    down = -scores
    # the cut is the n-th smallest among the titles within the bound (all n best are there), or the bound itself
    bound = _bound(down, n)
    near = np.flatnonzero(down <= bound)
    if n <= len(near) <= len(down) // 8:
        values = down[near]
        cut = np.sort(values)[n - 1]
        ahead = near[values < cut]
        tied = near[values == cut][: n - len(ahead)]
    else:  # the bound is a large tie (the zeros of a sparse source), or NaN scores: the whole catalog
        below = down[down < bound]
        cut = bound if n <= len(near) and len(below) < n else np.sort(down)[n - 1]
        ahead = np.flatnonzero(down < cut)
        tied = np.flatnonzero(down == cut)[: n - len(ahead)]
    rows = np.union1d(ahead, tied)
    return rows[np.isfinite(scores[rows])]


def stable_ranks(scores: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The positions of ``rows`` in ``np.argsort(-scores, kind="stable")`` (``scores``: [N] floats),
    counted without sorting indices: one sort of (value, catalog row) keys, one search per row."""
    if scores.dtype != np.float32:  # the keys hold 32-bit values
        order = np.argsort(-scores, kind="stable")
        ranks = np.empty(len(scores), dtype=np.int64)
        ranks[order] = np.arange(len(scores))
        return ranks[rows]
    down = -scores + np.float32(0.0)  # -0.0 and 0.0 sort as equals: one bit pattern for both
    bits = down.view(np.uint32)
    ordered = np.where(bits >> 31, ~bits, bits | np.uint32(0x80000000)).astype(np.uint64)
    shift = np.uint64(max(1, (len(scores) - 1).bit_length()))
    keys = (ordered << shift) | np.arange(len(scores), dtype=np.uint64)
    return np.searchsorted(np.sort(keys), keys[rows]).astype(np.int64)


def partition_top(masked: np.ndarray, n: int) -> np.ndarray:
    """A source's candidates as the batch top-K function picks them: the finite titles of
    ``np.argpartition(-masked, min(n, N - 1), axis=1)[:, :n]`` for one query (``masked``: [1, N]).

    Which titles come out is only NumPy's choice when titles tie at the cut (the n-th best equals
    the next one); otherwise they are the ``n`` best, found here without the partition, which is
    slow on arrays of many equal values (the zeros of a sparse source). Catalog order.
    """
    scores = masked[0]
    if n <= 0 or not len(scores):
        return np.zeros(0, dtype=np.int64)
    if n >= len(scores):
        return np.flatnonzero(np.isfinite(scores))
    down = -scores
    near = np.flatnonzero(down <= _bound(down, n + 1))
    if len(near) <= n:  # NaN scores: the whole catalog
        near = np.arange(len(down))
    values = down[near]
    last, after = np.partition(values, (n - 1, n))[[n - 1, n]]  # the n-th and (n + 1)-th best
    if last < after or not np.isfinite(last):  # no tie at the cut (a tie of -inf is dropped anyway)
        rows = near[values <= last]
        return rows[np.isfinite(scores[rows])]
    return tied_top(masked, n)


def tied_top(masked: np.ndarray, n: int) -> np.ndarray:
    """:func:`partition_top` when titles tie at the cut (``0 < n < N``): NumPy's partition picks them."""
    top = np.argpartition(-masked, n, axis=1)[0, :n]
    return np.sort(top[np.isfinite(masked[0, top])])


def cut_is_tied(best: np.ndarray, n: int) -> bool:
    """Whether the ``n``-th and ``(n + 1)``-th of the values ``best`` (best first) are equal and finite:
    the titles at the cut tie, and :func:`tied_top` must pick them."""
    return len(best) > n and best[n - 1] == best[n] and bool(np.isfinite(best[n - 1]))


def ordered_top(
    scores: np.ndarray, order: np.ndarray, excluded: np.ndarray, n: int, masked: Callable[[], np.ndarray]
) -> np.ndarray:
    """:func:`partition_top` of ``scores`` ([N], no NaN) with the ``excluded`` rows (unique) at -inf,
    read from the scores' order (``np.argsort(-scores, kind="stable")``, kept): the first ``n`` titles
    left. Only when titles tie at the cut does it partition the masked scores (``masked()``)."""
    if n <= 0 or not len(scores):
        return np.zeros(0, dtype=np.int64)
    if n >= len(scores) - len(excluded):  # (almost) the whole catalog
        return partition_top(masked(), n)
    head = order[: n + 1 + len(excluded)]
    if len(excluded):
        head = head[~np.isin(head, excluded, assume_unique=True)]
    head = head[: n + 1]
    if cut_is_tied(scores[head], n):
        return tied_top(masked(), n)
    first = head[:n]
    return np.sort(first[np.isfinite(scores[first])])
