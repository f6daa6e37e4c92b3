"""The top-K function for one request: the batch path's answer, without its full-catalog sorts.

:meth:`flywheel.models.stack.Recommender.recommend_many` answers queries in batches with [U, N]
matrices and DataFrames: every source's stable ordering of the whole catalog (an argsort of N
titles per source), the user and pair rows as frames, the ranker's inputs encoded from them.
For one request that is almost all waste. :class:`RequestPath` computes the same numbers another
way:

* what depends only on the request's time (the popular-now and new-release scores, their
  candidates when nothing is excluded, the titles' release recency) is computed once per time and
  kept; what depends only on the catalog (the ranker's content ids, creators, genres, the content
  snapshot, the item-to-item candidates of a user without history) once per model load;
* a source's candidates are its ``n`` best titles, ties at the cut in the version's tie order
  (:class:`~flywheel.models.sources.TieOrder`), found without sorting or partitioning the catalog
  (:func:`~flywheel.models.sources.top_rows`): the time-only sources read them from their order
  kept per time, minus the request's exclusions (:func:`~flywheel.models.sources.ordered_top`),
  the item-to-item source from the model's titles (every other title scores 0, and the zeros are
  read in tie order); only the candidates' ranks are counted (titles ahead of them), not the whole
  catalog's indices sorted;
* user, pair and ranker rows are numpy arrays built by the same arithmetic as the frames; the
  ranker's dense columns that depend on the title alone (the content snapshot, the constant ones)
  are scaled once per load for the whole catalog, its recency once per time, and a request
  gathers their rows (2026-12-04, the serving bench's bundle: 0.10-0.16 ms a request against
  0.18-0.25 ms scaling every column per request, the same bits).

The answers are identical (a unit test pins items and scores against the batch path, for known and
new users, with exclusions and ties), so evaluation, the benchmarks and serving share one top-K
function; :meth:`~flywheel.models.stack.Recommender.recommend` answers through this path.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from flywheel.config.features import DEFAULT_GENRES
from flywheel.models.bundle import two_stage_scores
from flywheel.models.contract import CONTENT_DENSE, CROSS_DENSE, SOURCE_DENSE, SOURCES, USER_DENSE, USER_VECTOR
from flywheel.models.dataset import genre_cosine_side
from flywheel.models.encoding import LOG_SCALED, encode_ranker_catalog, genre_multi_hot
from flywheel.models.inference import for_requests, run
from flywheel.models.ranker import combined_score, head_weight_vector
from flywheel.models.sources import (
    first_in_order,
    new_release_scores,
    ordered_top,
    recent_counts,
    release_age_days,
    stable_ranks,
    top_found,
    top_rows,
)
from flywheel.models.two_tower import IvfIndex

if TYPE_CHECKING:
    from flywheel.models.stack import Recommender

#: Request times whose time-only sources are kept (the default request time is one of them).
_TIMES_KEPT = 8
_RECENCY = "content_release_recency_days"
_OVERLAP = CROSS_DENSE[0]


@dataclass(frozen=True)
class UserQuery:
    """One request's user side, as the batch path's query row holds it."""

    user_id: str
    as_of_ms: int
    dense: np.ndarray
    """USER_DENSE values (float64)."""
    vector: np.ndarray
    """The genre affinity vector (float64)."""
    device_type: str
    history_rows: np.ndarray
    """Catalog rows of the latest interests before ``as_of``, most recent first."""
    seen_rows: np.ndarray
    """Catalog rows of every interest before ``as_of`` (the training interactions)."""

    def with_features(self, dense: Mapping[str, float], vector: Sequence[float], device_type: str) -> UserQuery:
        """The query with other user features (e.g. the online store's), same history."""
        values = np.asarray([float(dense.get(name, 0.0)) for name in USER_DENSE], dtype=float)
        return UserQuery(
            self.user_id,
            self.as_of_ms,
            values,
            np.asarray(vector, dtype=float),
            device_type,
            self.history_rows,
            self.seen_rows,
        )


@dataclass(frozen=True)
class RequestCandidates:
    """The merged candidates of one request and what their ranker rows are built from."""

    query: UserQuery
    rows: np.ndarray
    """Candidate catalog rows, ascending (the batch path's order)."""
    scores: dict[str, np.ndarray]
    """Each source's scores of the whole catalog: [1, N] float32."""
    excluded: np.ndarray
    """Excluded catalog rows (seen, and the caller's exclusions), unique."""
    masked_scores: dict[str, np.ndarray] = field(default_factory=dict)
    """The sources' scores with -inf where excluded, as far as computed (see :meth:`masked`)."""
    z_stats: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    """Each source's mean and standard deviation over the catalog less the exclusions, as far as
    computed (see :meth:`RequestPath.source_z`: the rank features and the blend read them)."""

    def masked(self, name: str) -> np.ndarray:
        """A source's scores, -inf where excluded ([1, N], kept)."""
        if name not in self.masked_scores:
            values = self.scores[name]
            if len(self.excluded):
                values = values.copy()
                values[0, self.excluded] = -np.inf
            self.masked_scores[name] = values
        return self.masked_scores[name]


@dataclass(frozen=True)
class _TimeSources:
    """What depends only on the request time."""

    scores: dict[str, np.ndarray]
    """popular_now and new_releases: [1, N] float32."""
    tops: dict[str, np.ndarray]
    """Their candidates when nothing is excluded."""
    orders: dict[str, np.ndarray]
    """Their orders with ties (:meth:`~flywheel.models.sources.TieOrder.scores_order`; none for scores with NaN)."""
    ranks: dict[str, np.ndarray]
    """Each title's place in their stable orders (``np.argsort(-scores, kind="stable")``, the rank
    features' order; [N], only for a ranker that reads the sources)."""
    recency: np.ndarray
    """Days from each title's release to the request time, as the pair rows compute it ([N] float64)."""
    recency_scaled: np.ndarray | None
    """The ranker's recency column of each title (scaled as the ranker's encoding scales it; None
    when the ranker does not read it)."""


def _zero_nan(values: np.ndarray) -> np.ndarray:
    """NaN -> 0.0, other values (infinities too) kept: pandas' ``fillna(0.0)``."""
    return np.where(np.isnan(values), 0.0, values)


class RequestPath:
    """One request at a time through the top-K function of ``top_k`` (see the module docstring)."""

    def __init__(self, top_k: Recommender) -> None:
        self.top_k = top_k
        self.spec = top_k.spec
        self.ties = top_k.ties
        self.n_items = len(top_k.content_ids)
        self.limits = {name: int(getattr(top_k.config.candidates, name)) for name in SOURCES}
        self.reads_sources = top_k.reads_sources or top_k.ranker is None
        self.found_index = top_k.index if isinstance(top_k.index, IvfIndex) and not self.reads_sources else None
        """The inverted-file index whose found titles alone give the two-tower candidates (None: the
        source's [N] row is built): nothing reads its other scores (all -inf) when the ranker does
        not read the sources."""
        if top_k.ranker is not None and top_k.ranker.use_retrieval_score:
            raise ValueError("the ranker reads the two-tower score: the top-K function builds no retrieval_score")
        # the user side, by user (the batch path's query rows: latest features, defaults filled)
        users = top_k.user_rows
        self.user_pos = {str(u): i for i, u in enumerate(users.index)}
        self.user_dense = np.zeros((len(users), len(USER_DENSE)))
        for j, name in enumerate(USER_DENSE):
            if name in users.columns:
                self.user_dense[:, j] = _zero_nan(users[name].to_numpy(dtype=float))
        devices = users["device_type"] if "device_type" in users.columns else pd.Series(np.nan, index=users.index)
        self.user_device = devices.fillna("other").astype(str).to_numpy(dtype=object)
        self.user_vectors = users[USER_VECTOR].to_numpy(dtype=object) if USER_VECTOR in users.columns else None
        # the catalog side, by catalog row
        self.catalog_inputs = encode_ranker_catalog(top_k.catalog, self.spec)
        snapshot = top_k.snapshot.reindex(top_k.content_ids)
        self.content_dense = _zero_nan(
            np.stack([snapshot[name].to_numpy(dtype=float) for name in CONTENT_DENSE], axis=1)
        )
        genres = top_k.catalog["genres"].apply(lambda g: list(g) if isinstance(g, list | tuple | np.ndarray) else [])
        self.overlap_genres = genre_multi_hot(genres, DEFAULT_GENRES)
        self._fitted_genres: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._dense_layout()
        self.head_weights = head_weight_vector(top_k.config.ranker).numpy()
        self.spec_users = {u: i + 1 for i, u in enumerate(self.spec.users)}  # 0: unknown
        self.spec_devices = {d: i + 1 for i, d in enumerate(self.spec.devices)}
        self.i2i_position = np.full(self.n_items, -1, dtype=np.int64)  # catalog row -> row of the EASE weights
        if top_k.item_to_item is not None:
            self.i2i_position[top_k.i2i_columns] = np.arange(len(top_k.i2i_columns))
        self.cold_item_to_item = None
        if top_k.item_to_item is not None:
            nothing = self._item_to_item(np.zeros(0, dtype=np.int64))
            self.cold_item_to_item = top_rows(nothing[0], self.limits["item_to_item"], self.ties)
        # the models as one TorchScript call each (no GIL held while they run; the same numbers)
        self.user_tower = for_requests(top_k.retrieval.user_tower)
        self.ranker = for_requests(top_k.ranker) if top_k.ranker is not None else None
        self._times: dict[int, _TimeSources] = {}
        self._lock = threading.Lock()
        self.time_sources(top_k.end_ms)  # the default request time, ready before the first request

    # -- the request's user ---------------------------------------------------------------------

    def query(self, user_id: str, as_of_ms: int | None = None) -> UserQuery:
        """The user's latest known features (defaults for a new user) and interests before ``as_of``."""
        user = str(user_id)
        as_of = self.top_k.end_ms if as_of_ms is None else int(as_of_ms)
        pos = self.user_pos.get(user)
        dense = np.zeros(len(USER_DENSE)) if pos is None else self.user_dense[pos].copy()
        device = "other" if pos is None else str(self.user_device[pos])
        raw = None if pos is None or self.user_vectors is None else self.user_vectors[pos]
        vector = np.asarray(raw if isinstance(raw, list | np.ndarray) else np.zeros(self.spec.user_vector_dim))
        empty = np.zeros(0, dtype=np.int64)
        times, rows = self.top_k.histories.get(user, (empty, empty))
        end = int(np.searchsorted(times, as_of, side="left"))
        history = rows[max(0, end - self.spec.history_length) : end][::-1]
        return UserQuery(
            user, as_of, np.asarray(dense, dtype=float), np.asarray(vector, dtype=float), device, history, rows[:end]
        )

    def _user_inputs(self, query: UserQuery) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The user tower's inputs, as :func:`flywheel.models.encoding.encode_users` builds them."""
        spec = self.spec
        raw = np.array(query.dense, dtype=float)[None, :]
        for j, name in enumerate(USER_DENSE):
            if name in LOG_SCALED:
                raw[:, j] = np.log1p(np.clip(raw[:, j], 0, None))
        raw = np.nan_to_num(raw, nan=0.0)
        n_user = len(USER_DENSE)
        scaled = (raw - np.asarray(spec.dense_mean[:n_user])) / np.asarray(spec.dense_std[:n_user])
        dense = np.hstack([scaled, self._vector32(query.vector)[None, :]]).astype(np.float32)
        user_idx = np.asarray([self._user_index(query.user_id)], dtype=np.int64)
        return torch.from_numpy(user_idx), torch.from_numpy(dense), torch.from_numpy(self._history_ids(query)[None, :])

    def _user_index(self, user_id: str) -> int:
        return self.spec_users.get(user_id, 0)

    def _vector32(self, vector: np.ndarray) -> np.ndarray:
        dim = self.spec.user_vector_dim
        out = np.zeros(dim, dtype=np.float32)
        values = np.asarray(vector, dtype=np.float32)[:dim]
        out[: len(values)] = values
        return out

    def _history_ids(self, query: UserQuery) -> np.ndarray:
        out = np.zeros(self.spec.history_length, dtype=np.int64)
        ids = self.catalog_inputs.content_idx[query.history_rows[: self.spec.history_length]]
        out[: len(ids)] = ids
        return out

    # -- what depends only on the time -----------------------------------------------------------

    def time_sources(self, as_of_ms: int) -> _TimeSources:
        """The popular-now and new-release scores at ``as_of_ms`` and what follows from them (kept)."""
        with self._lock:
            found = self._times.get(as_of_ms)
        if found is not None:
            return found
        top_k, cand = self.top_k, self.top_k.config.candidates
        recent = recent_counts(
            top_k.times, top_k.rows, self.n_items, as_of_ms, cand.popular_days, cand.popular_min_interactions
        )
        ages = release_age_days(top_k.release_ms, as_of_ms)
        scores = {
            "popular_now": np.log1p(recent)[None, :],
            "new_releases": new_release_scores(ages, recent, cand.new_release_days)[None, :],
        }
        tops = {name: top_rows(values[0], self.limits[name], self.ties) for name, values in scores.items()}
        orders = {
            name: self.ties.scores_order(values[0]) for name, values in scores.items() if not np.isnan(values).any()
        }
        ranks: dict[str, np.ndarray] = {}
        for name, values in scores.items() if self.reads_sources else ():
            ranks[name] = np.empty(self.n_items, dtype=np.int64)
            ranks[name][np.argsort(-values[0], kind="stable")] = np.arange(self.n_items)
        recency = self._recency(as_of_ms)
        recency_scaled = None
        if self._recency_col is not None:
            recency_scaled = self._scaled(np.asarray([self._recency_col]), recency[:, None])[:, 0]
        found = _TimeSources(scores, tops, orders, ranks, recency, recency_scaled)
        with self._lock:
            if len(self._times) >= _TIMES_KEPT:
                self._times.pop(next(iter(self._times)))
            self._times[as_of_ms] = found
        return found

    def _recency(self, as_of_ms: int) -> np.ndarray:
        """Days from release to ``as_of_ms`` per title, by the pair rows' own expression
        (:func:`flywheel.models.dataset.pair_rows`) on a query row stamped as the batch path stamps it."""
        stamp = pd.DataFrame(
            {"event_timestamp": pd.to_datetime(np.asarray([as_of_ms], dtype=np.int64), unit="ms", utc=True)}
        )
        when = stamp["event_timestamp"].to_numpy()[np.zeros(self.n_items, dtype=np.int64)]
        released = pd.to_datetime(self.top_k.catalog["release_ts"], utc=True).to_numpy()
        delta = pd.to_datetime(when, utc=True) - pd.to_datetime(released, utc=True)
        return (delta / pd.Timedelta(days=1)).to_numpy(dtype=float)

    # -- candidates ------------------------------------------------------------------------------

    def candidates(self, query: UserQuery, exclude: Sequence[str] = ()) -> RequestCandidates:
        """Every source's scores for the request and the merged candidates, never an excluded title."""
        top_k = self.top_k
        parts = [query.seen_rows] if top_k.config.evaluation.exclude_seen else []
        if len(exclude):
            cols = top_k.column.get_indexer(np.asarray(list(exclude), dtype=object))
            parts.append(cols[cols >= 0])
        excluded = np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
        scores = {"item_to_item": self._item_to_item(query.seen_rows)}
        timed = self.time_sources(query.as_of_ms)
        scores.update(timed.scores)
        request = RequestCandidates(query, np.zeros(0, dtype=np.int64), scores, excluded)
        two_tower = None
        with torch.inference_mode():
            user = run(self.user_tower, *self._user_inputs(query))
            if self.found_index is not None:  # its found titles alone: no [N] row of -inf
                rows, logits = self.found_index.found_logits(user)
                two_tower = top_found(rows, logits, excluded, self.limits["two_tower"], self.ties)
            else:
                scores["two_tower"] = top_k.index.scores(user).numpy()
        found = []
        for name in SOURCES:
            n = self.limits[name]
            if n == 0:
                continue
            if name == "two_tower" and two_tower is not None:
                found.append(two_tower)
            elif name in timed.tops and not len(excluded):
                found.append(timed.tops[name])
            elif name in timed.orders:
                found.append(ordered_top(timed.scores[name][0], timed.orders[name], excluded, n))
            elif name == "item_to_item" and top_k.item_to_item is not None:
                found.append(self._item_to_item_top(request, n))
            else:
                found.append(top_rows(request.masked(name)[0], n, self.ties))
        rows = np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)
        return replace(request, rows=rows)

    def _item_to_item_top(self, request: RequestCandidates, n: int) -> np.ndarray:
        """:func:`~flywheel.models.sources.top_rows` of the item-to-item scores, read from the model's
        titles: every other title scores 0, so when fewer than ``n`` titles score above 0 the rest
        are the first titles scoring 0 in tie order. Otherwise (the cut above the zeros, or too few
        zeros) the catalog's scores are searched."""
        if not len(request.query.seen_rows) and not len(request.excluded) and self.cold_item_to_item is not None:
            return self.cold_item_to_item  # no history, nothing excluded: every score is 0
        scores, excluded = request.scores["item_to_item"][0], request.excluded
        columns = self.top_k.i2i_columns
        skip = np.zeros(self.n_items, dtype=bool)
        skip[excluded] = True
        above = columns[(scores[columns] > 0) & ~skip[columns]]
        if len(above) < n:
            zeros = first_in_order(lambda rows: (scores[rows] == 0) & ~skip[rows], n - len(above), self.ties.order)
            if len(zeros) == n - len(above):
                return np.union1d(above, zeros)
        return top_rows(request.masked("item_to_item")[0], n, self.ties)

    def _item_to_item(self, seen_rows: np.ndarray) -> np.ndarray:
        """:func:`~flywheel.models.sources.item_to_item_scores` of one user's history: the same sums,
        row by row in catalog order from zero, without building the sparse matrices."""
        if self.top_k.item_to_item is None:
            return np.full((1, self.n_items), -np.inf, dtype=np.float32)
        positions = self.i2i_position[np.unique(seen_rows)]
        weights = self.top_k.i2i_weights[positions[positions >= 0]]
        out = np.zeros((1, self.n_items), dtype=np.float32)
        out[0, self.top_k.i2i_columns] = np.add.reduce(weights, axis=0, initial=np.float32(0.0))
        return out

    # -- the ranker's rows -----------------------------------------------------------------------

    def source_features(self, request: RequestCandidates) -> dict[str, np.ndarray]:
        """The SOURCE_DENSE features of the candidates, as :meth:`Recommender.features` computes them."""
        rows = request.rows
        timed = self.time_sources(request.query.as_of_ms)
        out: dict[str, np.ndarray] = {}
        for name in SOURCES:
            matrix = request.masked(name)
            z = self.source_z(request, name)
            ranks = timed.ranks.get(name)
            if ranks is None:  # a source of the user's: count the titles ahead
                rank = stable_ranks(matrix[0], rows)
            else:  # the excluded titles ahead of a candidate leave; the order of the others holds
                ahead = np.sort(ranks[request.excluded])
                rank = ranks[rows] - np.searchsorted(ahead, ranks[rows])
            r = rank.astype(np.float32)
            ok = np.isfinite(matrix[0, rows])
            out[f"source_{name}_rank"] = np.where(ok, 1.0 / np.log2(2.0 + r), 0.0)
            out[f"source_{name}_z"] = z
            out[f"source_{name}_in"] = (ok & (r < self.limits[name])).astype(np.float32)
        return out

    def source_z(self, request: RequestCandidates, name: str) -> np.ndarray:
        """A source's z-score of each candidate over the catalog less the exclusions (clipped to
        [-5, 10], -5 where the source has no score), as :meth:`Recommender.features` computes it."""
        matrix = request.masked(name)
        if name not in request.z_stats:  # one pass over the catalog a source and request
            finite = np.isfinite(matrix)
            spread = np.where(finite.any(1, keepdims=True), np.where(finite, matrix, np.nan), 0.0)
            request.z_stats[name] = (
                np.nanmean(spread, axis=1, keepdims=True),
                np.nanstd(spread, axis=1, keepdims=True),
            )
        mean, std = request.z_stats[name]
        values = matrix[:, request.rows]
        safe = np.where(np.isfinite(values), values, np.nan)
        return np.clip(np.nan_to_num((safe - mean) / np.where(std > 0, std, 1.0), nan=-5.0), -5.0, 10.0)[0]

    def two_stage(self, request: RequestCandidates, ranker_scores: np.ndarray) -> np.ndarray:
        """The candidates' two-stage scores from their ranker scores (whichever backend computed them):
        :func:`~flywheel.models.bundle.two_stage_scores` with the version's item-to-item blend."""
        if not self.top_k.blend:
            return ranker_scores
        return two_stage_scores(ranker_scores, self.source_z(request, "item_to_item"), self.top_k.blend)

    def _dense_layout(self) -> None:
        """Where each of the ranker's dense columns comes from, and the columns that depend on the
        title alone, scaled once for the whole catalog (:meth:`ranker_inputs` gathers their rows)."""
        names = self.spec.dense_names
        at = {name: j for j, name in enumerate(names)}
        self._dense_mean = np.asarray(self.spec.dense_mean, dtype=float)
        self._dense_std = np.asarray(self.spec.dense_std, dtype=float)
        self._logged = np.asarray([name in LOG_SCALED for name in names], dtype=bool)
        produced = set(SOURCE_DENSE) if self.reads_sources else set()
        self._missing = next(
            (n for n in names if n not in (*USER_DENSE, *CONTENT_DENSE, _OVERLAP) and not n.startswith("source_")),
            None,
        )
        """A column the top-K function does not build (the request raises, as the batch path would)."""
        pairs = [(at[n], j) for j, n in enumerate(USER_DENSE) if n in at]
        self._user_cols = np.asarray([c for c, _ in pairs], dtype=np.int64)
        self._user_src = np.asarray([j for _, j in pairs], dtype=np.int64)
        pairs = [(at[n], j) for j, n in enumerate(CONTENT_DENSE) if n in at and n != _RECENCY]
        self._content_cols = np.asarray([c for c, _ in pairs], dtype=np.int64)
        self._content_src = np.asarray([j for _, j in pairs], dtype=np.int64)
        self._recency_col = at.get(_RECENCY)
        self._overlap_col = at.get(_OVERLAP)
        self._source_cols = {n: at[n] for n in names if n.startswith("source_") and n in produced}
        zeros = np.asarray([at[n] for n in names if n.startswith("source_") and n not in produced], dtype=np.int64)
        block = np.zeros((self.n_items, len(names)))
        block[:, self._content_cols] = self._scaled(self._content_cols, self.content_dense[:, self._content_src])
        block[:, zeros] = self._scaled(zeros, np.zeros((1, len(zeros))))
        self._catalog_dense = block
        """[N, D]: the scaled snapshot columns and the constant columns of every title (float64)."""

    def _scaled(self, cols: np.ndarray, values: np.ndarray) -> np.ndarray:
        """:func:`~flywheel.models.encoding.encode_ranker`'s scaling of raw values of the dense
        columns ``cols`` (the last axis): log1p of the clipped values of the LOG_SCALED ones, NaN to
        0, then standardised; element by element the same arithmetic, so the same bits."""
        x = np.array(values, dtype=float)
        logged = self._logged[cols]
        if logged.any():
            x[..., logged] = np.log1p(np.clip(x[..., logged], 0, None))
        if not np.isfinite(x).all():  # NaN to 0 (and infinities to the largest floats), as encode_ranker
            x = np.nan_to_num(x, nan=0.0)
        return (x - self._dense_mean[cols]) / self._dense_std[cols]

    def ranker_inputs(
        self, request: RequestCandidates, content: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ranker's (sparse ids, dense features, history ids) of the candidates, as
        :func:`~flywheel.models.encoding.encode_ranker` encodes the batch path's pair rows.

        The columns that depend on the title alone are gathered from the catalog's block (scaled at
        load); the user's, the time's, the genre overlap and the sources' are scaled here.

        Args:
            request: The candidates.
            content: Fresher content features (CONTENT_DENSE order, one row per candidate, NaN where
                unknown) to use instead of the snapshot's; the release recency is always computed.
        """
        spec, query, rows = self.spec, request.query, request.rows
        if self._missing is not None:
            raise ValueError(f"the ranker reads {self._missing!r}, which the top-K function does not build")
        n = len(rows)
        dense = self._catalog_dense[rows]
        dense[:, self._user_cols] = self._scaled(self._user_cols, query.dense[self._user_src][None, :])
        if content is not None and len(self._content_cols):
            fresh = content[:, self._content_src]
            known = ~np.isnan(fresh)
            if known.any():
                scaled = self._scaled(self._content_cols, fresh)
                dense[:, self._content_cols] = np.where(known, scaled, dense[:, self._content_cols])
        if self._recency_col is not None:
            recency = self.time_sources(query.as_of_ms).recency_scaled
            assert recency is not None
            dense[:, self._recency_col] = recency[rows]
        if self._overlap_col is not None:
            overlap = self._genre_overlap(query.vector, rows)
            dense[:, self._overlap_col] = self._scaled(np.asarray([self._overlap_col]), overlap[:, None])[:, 0]
        if self._source_cols:
            for name, values in self.source_features(request).items():
                col = self._source_cols[name]
                dense[:, col] = self._scaled(np.asarray([col]), np.asarray(values, dtype=float)[:, None])[:, 0]
        width, dim = dense.shape[1], spec.user_vector_dim
        features = np.empty((n, width + dim + self.catalog_inputs.genres.shape[1]), dtype=np.float32)
        features[:, :width] = dense
        features[:, width : width + dim] = self._vector32(query.vector)
        features[:, width + dim :] = self.catalog_inputs.genres[rows]
        sparse = np.empty((n, 4), dtype=np.int64)
        sparse[:, 0] = self._user_index(query.user_id)
        sparse[:, 1] = self.catalog_inputs.content_idx[rows]
        sparse[:, 2] = self.catalog_inputs.creator_idx[rows]
        sparse[:, 3] = self.spec_devices.get(query.device_type, 0)
        history = np.broadcast_to(self._history_ids(query), (n, spec.history_length)).copy()
        return sparse, features, history

    def _genre_overlap(self, vector: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """:func:`~flywheel.models.dataset.genre_cosine` of the user's vector with each candidate:
        the same products, sums and norms row by row, the titles' side (their genres fitted to the
        vector's length, and their norms) kept per length."""
        user = np.asarray(vector, dtype=float)[None, :]
        fitted = self._fitted_genres.get(user.shape[1])
        if fitted is None:
            hot = genre_cosine_side(self.overlap_genres, user.shape[1])
            fitted = self._fitted_genres[user.shape[1]] = (hot, np.linalg.norm(hot, axis=1))
        hot, norms = fitted[0][rows], fitted[1][rows]
        return (user * hot).sum(1) / (np.linalg.norm(user, axis=1) * norms + 1e-9)

    # -- the answer ------------------------------------------------------------------------------

    def rank_scores(self, request: RequestCandidates, inputs: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        """The two-stage score of each candidate (:meth:`two_stage` of the ranker's weighted head
        score; the two-tower z when there is no ranker)."""
        if self.ranker is None:
            return np.asarray(self.source_features(request)["source_two_tower_z"], dtype=float)
        return self.two_stage(request, self.ranker_scores(*inputs))

    def ranker_scores(self, sparse: np.ndarray, dense: np.ndarray, history: np.ndarray) -> np.ndarray:
        """The ranker's weighted head score of encoded rows (:meth:`ranker_inputs`), one TorchScript call.

        Raises:
            ValueError: The version has no ranker.
        """
        if self.ranker is None:
            raise ValueError("this model version has no ranker")
        logits = run(self.ranker, torch.from_numpy(sparse), torch.from_numpy(dense), torch.from_numpy(history))
        return combined_score(torch.sigmoid(logits).numpy(), self.head_weights)

    def recommend(
        self, user_id: str, k: int, exclude: Sequence[str] = (), *, as_of_ms: int | None = None
    ) -> tuple[list[str], list[float]]:
        """The top-``k`` titles and their ranker scores (see :meth:`Recommender.recommend`)."""
        request = self.candidates(self.query(user_id, as_of_ms), exclude)
        if not len(request.rows):
            return [], []
        score = self.rank_scores(request, self.ranker_inputs(request))
        order = np.argsort(-score, kind="stable")[:k]
        ids = self.top_k.content_ids[request.rows[order]]
        return [str(c) for c in ids], [float(s) for s in np.asarray(score[order], dtype=float)]
