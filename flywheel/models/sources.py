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


def recent_counts(
    times_ms: np.ndarray, rows: np.ndarray, n_items: int, as_of_ms: int, days: float, min_interactions: int = 0
) -> np.ndarray:
    """Interactions per catalog row in ``[as_of - days, as_of)`` (``times_ms`` sorted ascending),
    the window reaching further back when it holds fewer than ``min_interactions``: then the last
    ``min_interactions`` before ``as_of`` (all of them when there are fewer)."""
    lo = int(np.searchsorted(times_ms, as_of_ms - int(days * DAY_MS), side="left"))
    hi = int(np.searchsorted(times_ms, as_of_ms, side="left"))
    lo = max(0, min(lo, hi - min_interactions))
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


@dataclass(frozen=True)
class TieOrder:
    """The order that breaks ties at a source's cut: the titles the model's training data holds
    most interactions with first, then catalog order. A total order, so which tied titles make the
    cut is a rule both paths compute, not a sort's internals: a user whose item-to-item scores are
    zero but for a few titles gets, as the rest of that source's candidates, the most watched titles
    it has no opinion of; titles that score alike in popular-now (nothing played in its window) or
    embed alike are taken most watched first."""

    order: np.ndarray
    """Catalog rows, first first."""
    rank: np.ndarray
    """Each catalog row's place in :attr:`order`."""

    @classmethod
    def by_interactions(cls, rows: np.ndarray, n_items: int) -> TieOrder:
        """The order of ``n_items`` catalog rows given the rows of the training interactions (one per
        interaction): by count, then catalog order."""
        counts = np.bincount(np.asarray(rows, dtype=np.int64), minlength=n_items)[:n_items]
        order = np.argsort(-counts, kind="stable")
        rank = np.empty(n_items, dtype=np.int64)
        rank[order] = np.arange(n_items)
        return cls(order, rank)

    def scores_order(self, scores: np.ndarray) -> np.ndarray:
        """Every catalog row, highest of ``scores`` ([N], no NaN) first, ties in this order."""
        return np.lexsort((self.rank, -scores))


def top_mask(masked: np.ndarray, n: int, ties: TieOrder) -> np.ndarray:
    """A source's candidates for a batch of queries: [Q, N] True at each query's ``n`` highest
    finite ``masked`` scores ([Q, N]; NaN counts as no opinion), ties at the cut broken by ``ties``."""
    finite = np.isfinite(masked)
    if n <= 0:
        return np.zeros_like(finite)
    if n >= masked.shape[1]:
        return finite
    down = -masked[:, ties.order]  # columns in the tie order: among equals, the first columns win
    down[np.isnan(down)] = np.inf
    cut = np.partition(down, n - 1, axis=1)[:, n - 1 : n]
    ahead = down < cut
    tied = down == cut
    chosen = ahead | (tied & (np.cumsum(tied, axis=1) <= n - ahead.sum(axis=1, keepdims=True)))
    out = np.empty_like(chosen)
    out[:, ties.order] = chosen
    return out & finite


def top_rows(scores: np.ndarray, n: int, ties: TieOrder) -> np.ndarray:
    """:func:`top_mask` of one query (``scores``: [N], excluded titles at -inf), as catalog rows in
    catalog order, found without sorting the catalog: the cut is searched among the titles within a
    sampled bound, and a large tie at the cut (the zeros of a sparse source) is read in tie order."""
    if n <= 0 or not len(scores):
        return np.zeros(0, dtype=np.int64)
    if n >= len(scores):
        return np.flatnonzero(np.isfinite(scores))
    down = -np.asarray(scores)
    nan = np.isnan(down)
    if nan.any():
        down[nan] = np.inf
    bound = _bound(down, n)
    near = np.flatnonzero(down <= bound)
    tied: np.ndarray | None = None
    if n <= len(near) <= len(down) // 8:
        values = down[near]
        cut = np.partition(values, n - 1)[n - 1]
        ahead = near[values < cut]
        tied = near[values == cut]
    else:  # the bound is a large tie (the zeros of a sparse source), or a poor sample
        below = np.count_nonzero(down < bound)
        cut = bound if n <= len(near) and below < n else np.partition(down, n - 1)[n - 1]
        ahead = np.flatnonzero(down < cut)
    need = n - len(ahead)
    if need > 0 and np.isfinite(cut):
        if tied is None:
            tied = first_in_order(lambda rows: down[rows] == cut, need, ties.order)
        elif len(tied) > need:
            tied = tied[np.argsort(ties.rank[tied], kind="stable")[:need]]
        ahead = np.union1d(ahead, tied)
    return ahead[np.isfinite(scores[ahead])]


def top_found(rows: np.ndarray, values: np.ndarray, excluded: np.ndarray, n: int, ties: TieOrder) -> np.ndarray:
    """:func:`top_rows` of scores that are finite only at ``rows`` (unique, scored ``values``), with
    the ``excluded`` rows (unique) at -inf: the ``n`` best of the rows left, ties in ``ties``'
    order, in catalog order; read from the rows alone (an inverted-file index's found titles)."""
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    keep = np.isfinite(values)
    if len(excluded):
        keep &= ~np.isin(rows, excluded, assume_unique=True)
    rows, values = rows[keep], values[keep]
    if len(rows) > n:
        rows = rows[np.lexsort((ties.rank[rows], -values))[:n]]
    return np.sort(rows)


def first_in_order(is_tied: Callable[[np.ndarray], np.ndarray], need: int, order: np.ndarray) -> np.ndarray:
    """The first ``need`` rows of ``order`` that ``is_tied`` (a test of an array of rows) accepts,
    read in growing chunks (all of them when fewer are tied)."""
    found: list[np.ndarray] = []
    got, start, size = 0, 0, max(1024, 4 * need)
    while got < need and start < len(order):
        chunk = order[start : start + size]
        hits = chunk[is_tied(chunk)]
        found.append(hits)
        got += len(hits)
        start += size
        size *= 2
    return np.concatenate(found)[:need] if found else np.zeros(0, dtype=np.int64)


def ordered_top(scores: np.ndarray, order: np.ndarray, excluded: np.ndarray, n: int) -> np.ndarray:
    """:func:`top_rows` of ``scores`` ([N], no NaN) with the ``excluded`` rows (unique) at -inf, read
    from the scores' order with ties (:meth:`TieOrder.scores_order`, kept): the first ``n`` titles left."""
    if n <= 0 or not len(scores):
        return np.zeros(0, dtype=np.int64)
    head = order[: n + len(excluded)]
    if len(excluded):
        head = head[~np.isin(head, excluded, assume_unique=True)]
    first = head[:n]
    return np.sort(first[np.isfinite(scores[first])])
