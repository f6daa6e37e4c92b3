"""Several candidate sources, one ranker: the top-K function of a model version.

The pattern large platforms use: cheap sources each propose titles for a user - the two-tower
retrieval, the item-to-item model over the user's history (EASE), what is popular now, new
releases - their candidates are merged and deduplicated, and the multi-task ranker orders them,
reading every source's opinion of every candidate as features (its rank and its standardised
score in each source, and whether that source proposed it) next to the user, content and cross
features. :class:`Recommender` holds what this needs, built once per model load (item
embeddings, the EASE weights, each user's history and latest features, the interactions behind
the popularity counts); :meth:`Recommender.recommend` is the one top-K function - ``(user, k,
exclusions) -> (items, scores)`` - that evaluation, the benchmark and the model server call.
:meth:`Recommender.recommend_many` answers many queries at once ([U, N] matrices, frames);
:meth:`Recommender.recommend` answers one through :class:`~flywheel.models.request_path.RequestPath`,
which computes the same numbers without the batch's full-catalog work (a unit test pins them equal).
A source proposes its ``n`` best titles; titles tied at the cut are taken in the version's tie
order (:class:`~flywheel.models.sources.TieOrder`: most interactions in the training data first),
a rule the one-request path computes without partitioning the catalog. Until 2026-12-03 NumPy's
partition (``argpartition``) picked them, which the request path could only reproduce by
partitioning the catalog (about 2.5 ms at 100k titles for an item-to-item cut among the zeros).
On ml-latest-small (deterministic runs) the two stages' NDCG@10 was 0.0755 with the partition,
0.0784 with most interactions first, 0.0788 with the newest titles first (EASE 0.0753).

Training the ranker (:func:`train_stacked_ranker`) uses the same code: the window's training
part is split again as the evaluation splits (:func:`~flywheel.models.dataset.split_window`);
the sources are fitted on the earlier part, propose candidates for each user as of the user's
first later interaction, and each candidate is labelled by what the user did with it later.
Negatives are real: retrieved candidates the user did not engage with (the distribution the
ranker sees when serving), and, where the window logs impressions, titles shown without a
click, with their logged positions. Retrieved negatives are sampled per user; the heads' biases
are then shifted by log(sampling rate), the correction that keeps probabilities calibrated.

Where the ranker reads the sources (imported interactions), the two-stage score adds the
item-to-item source's opinion to the ranker's: log(ranker score) + blend x the candidate's EASE
z-score (:func:`~flywheel.models.bundle.two_stage_scores`), a blend of two different models. The ranker learns from one
query per user, and its order moves with the seed; the blend is steadier and better. The blend is
chosen per version on the ranker's validation users (:func:`choose_source_blend`) and kept in its
ranker configuration; the request path and the model server add it after whichever backend ranked.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from flywheel.config.training import HEAD_NAMES, TrainingConfig
from flywheel.evaluation.metrics import rank_flat, ranking_metrics
from flywheel.models.bundle import ModelBundle, two_stage_scores
from flywheel.models.contract import SOURCES
from flywheel.models.dataset import (
    INTEREST_LABELS,
    USER_COLUMNS,
    content_snapshot,
    is_relevant,
    logs_impressions,
    pair_rows,
    relevance_label,
    split_window,
)
from flywheel.models.encoding import FeatureSpec, encode_catalog
from flywheel.models.ranker import (
    MultiTaskRanker,
    build_ranker,
    combined_score,
    predict_heads,
    split_validation,
    train_ranker,
)
from flywheel.models.request_path import RequestPath
from flywheel.models.sources import (
    ItemToItem,
    TieOrder,
    catalog_release_ms,
    fit_ease,
    interaction_matrix,
    item_to_item_scores,
    new_release_scores,
    recent_counts,
    release_age_days,
    stable_ranks,
    top_mask,
    top_titles,
)
from flywheel.models.two_tower import TwoTower, catalog_index, embed_users

_CHUNK = 512

BLEND_GRID: tuple[float, ...] = (0.0, 0.3, 1.0, 3.0)
"""The item-to-item weights :func:`choose_source_blend` chooses from."""


def blend_ndcg(rows: pd.DataFrame, ranker_scores: np.ndarray, relevant: np.ndarray, blend: float, k: int = 10) -> float:
    """Mean NDCG@``k`` over the users of labelled candidate ``rows`` (ranked within each user by
    :func:`~flywheel.models.bundle.two_stage_scores`), users without a relevant candidate left out."""
    score = two_stage_scores(ranker_scores, rows["source_item_to_item_z"].to_numpy(), blend)
    user, users = pd.factorize(rows["user_id"].astype(str), sort=True)
    top = rank_flat(user, np.arange(len(rows)), score, len(users), k)
    wanted: list[set[object]] = [set() for _ in users]
    for row in np.flatnonzero(relevant):
        wanted[user[row]].add(row)
    return ranking_metrics(list(top), wanted, (k,))[f"ndcg@{k}"] if any(wanted) else float("nan")


def choose_source_blend(
    ranker: MultiTaskRanker, data: pd.DataFrame, catalog: pd.DataFrame, spec: FeatureSpec, config: TrainingConfig
) -> tuple[float, dict[str, float]]:
    """The item-to-item blend of a ranker trained on ``data`` (labelled candidates with the sources'
    features): ``config.ranker.source_blend`` when set, else the one of :data:`BLEND_GRID` with the
    best NDCG@10 over the ranker's validation rows (its early-stopping users, not fitted on; the
    smaller blend on a tie, 0 without validation rows).

    Returns:
        The blend and the NDCG@10 of each blend tried (``ranker.blend.<value>.ndcg@10``).
    """
    if config.ranker.source_blend is not None:
        return config.ranker.source_blend, {}
    _, val = split_validation(data, config.ranker)
    rows = data.iloc[val]
    relevant = is_relevant(rows, relevance_label(rows, config.evaluation))
    if not len(rows) or not relevant.any():
        return 0.0, {}
    scores = combined_score(predict_heads(ranker, rows, catalog, spec), config.ranker)
    ndcg = {blend: blend_ndcg(rows, scores, relevant, blend) for blend in BLEND_GRID}
    best = max(BLEND_GRID, key=lambda b: (ndcg[b], -b))
    return best, {f"ranker.blend.{b:g}.ndcg@10": v for b, v in ndcg.items()}


def interest_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of a window that signal interest (any interest label): user_id, content_id, timestamp_ms, by time."""
    hit = (frame[list(INTEREST_LABELS)].to_numpy(dtype=float) > 0).any(axis=1)
    rows = frame.loc[hit, ["user_id", "content_id", "event_timestamp"]].copy()
    rows["user_id"] = rows["user_id"].astype(str)
    rows["content_id"] = rows["content_id"].astype(str)
    rows["timestamp_ms"] = _ms(rows["event_timestamp"])
    return rows.drop(columns="event_timestamp").sort_values("timestamp_ms", kind="stable").reset_index(drop=True)


def _ms(stamps: pd.Series) -> np.ndarray:
    return ((pd.to_datetime(stamps, utc=True) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)).to_numpy(
        dtype=np.int64
    )


def fit_item_to_item(train: pd.DataFrame, catalog: pd.DataFrame, config: TrainingConfig) -> ItemToItem | None:
    """EASE on the interest interactions of ``train`` (None when the source is off or no title qualifies)."""
    cand = config.candidates
    if cand.item_to_item == 0:
        return None
    interest = interest_rows(train)
    ids = pd.Index(catalog["content_id"].astype(str))
    rows = ids.get_indexer(interest["content_id"])
    users = pd.factorize(interest["user_id"])[0]
    keep = rows >= 0
    matrix = interaction_matrix(users[keep], rows[keep], int(users.max(initial=-1)) + 1, len(ids))
    try:
        return fit_ease(
            matrix,
            ids.to_numpy(dtype=object),
            lam=cand.ease_lambda,
            min_support=cand.ease_min_support,
            max_items=cand.ease_max_items,
        )
    except ValueError:
        return None


@dataclass(frozen=True)
class Scored:
    """Every source's scores for a batch of users (each [U, N], catalog order; -inf = never)."""

    scores: dict[str, np.ndarray]
    candidates: np.ndarray
    """[U, N] True where some source proposed the title (and it is not excluded)."""
    excluded: np.ndarray
    """[U, N] True for titles left out (seen in training, or excluded by the caller)."""


class Recommender:
    """The top-K function of a model version, with its state built once (see the module docstring)."""

    def __init__(
        self, bundle: ModelBundle, *, catalog: pd.DataFrame, train: pd.DataFrame | None = None, ranked: bool = True
    ) -> None:
        """Build the state.

        Args:
            bundle: The model version (towers, ranker, EASE weights, configs, training state).
            catalog: The titles to recommend from.
            train: The training rows (default: the bundle's ``state``).
            ranked: False: candidates are ordered by the two-tower score (the ranker's training).

        Raises:
            ValueError: There are no training rows.
        """
        rows = bundle.state if train is None else train
        if rows is None or rows.empty:
            raise ValueError("the top-K function needs the training rows: the bundle has no state")
        train = rows
        self.spec = bundle.spec
        self.retrieval = bundle.retrieval
        self.ranker = bundle.ranker if ranked else None
        self.config = bundle.training_config()
        self.item_to_item = bundle.item_to_item
        self.catalog = catalog.reset_index(drop=True)
        self.content_ids = self.catalog["content_id"].astype(str).to_numpy(dtype=object)
        self.column = pd.Index(self.content_ids)
        self.release_ms = catalog_release_ms(self.catalog)
        interest = interest_rows(train)
        interest["row"] = self.column.get_indexer(interest["content_id"])
        self.interest = interest[interest["row"] >= 0].reset_index(drop=True)
        self.times = self.interest["timestamp_ms"].to_numpy(dtype=np.int64)
        self.rows = self.interest["row"].to_numpy(dtype=np.int64)
        self.ties = TieOrder.by_interactions(self.rows, len(self.content_ids))
        self.end_ms = int(_ms(train["event_timestamp"]).max()) + 1 if len(train) else 0
        self.histories = {
            u: (g["timestamp_ms"].to_numpy(dtype=np.int64), g["row"].to_numpy(dtype=np.int64))
            for u, g in self.interest.groupby("user_id", sort=False)
        }
        latest = train.sort_values("event_timestamp", kind="stable").groupby("user_id").tail(1)
        latest = latest.assign(user_id=latest["user_id"].astype(str)).set_index("user_id")
        self.user_rows = latest[[c for c in USER_COLUMNS if c in latest.columns and c not in ("user_id", "history")]]
        self.snapshot = content_snapshot(train, pd.Timestamp(self.end_ms, unit="ms", tz="UTC"))
        self.reads_sources = reads_sources(train)
        blend = self.config.ranker.source_blend if self.reads_sources and self.ranker is not None else None
        self.blend = float(blend or 0.0)
        """The item-to-item weight of the two-stage score (:func:`~flywheel.models.bundle.two_stage_scores`;
        0 on logged traffic)."""
        self.index = catalog_index(
            self.retrieval, encode_catalog(self.catalog, self.spec), self.config.candidates, seed=self.config.seed
        )
        if self.item_to_item is not None:
            self.i2i_columns, self.i2i_weights = self.item_to_item.restricted(self.column)
        self._request_path: RequestPath | None = None
        self._path_lock = threading.Lock()

    # -- queries --------------------------------------------------------------------------------

    def queries(self, user_ids: Sequence[str] | np.ndarray, as_of_ms: np.ndarray) -> pd.DataFrame:
        """The user columns of each query as of its time: the latest known features (defaults for
        a new user) and the interest history before ``as_of``."""
        users = [str(u) for u in user_ids]
        frame = self.user_rows.reindex(users)
        frame = frame.reset_index().rename(columns={"index": "user_id"})
        frame["user_id"] = users
        frame["device_type"] = frame.get("device_type", pd.Series(index=frame.index)).fillna("other")
        for col in frame.columns:
            if col not in ("user_id", "device_type") and frame[col].dtype.kind == "f":
                frame[col] = frame[col].fillna(0.0)
        dim = self.spec.user_vector_dim
        if "user_genre_affinity_vector" in frame.columns:
            frame["user_genre_affinity_vector"] = [
                v if isinstance(v, list | np.ndarray) else np.zeros(dim) for v in frame["user_genre_affinity_vector"]
            ]
        else:
            frame["user_genre_affinity_vector"] = [np.zeros(dim)] * len(frame)
        frame["event_timestamp"] = pd.to_datetime(np.asarray(as_of_ms, dtype=np.int64), unit="ms", utc=True)
        length = self.spec.history_length
        history = []
        for user, t in zip(users, np.asarray(as_of_ms, dtype=np.int64), strict=True):
            times, rows = self.histories.get(user, (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)))
            end = int(np.searchsorted(times, t, side="left"))
            history.append(list(self.content_ids[rows[max(0, end - length) : end][::-1]]))
        frame["history"] = history
        return frame

    def seen(self, user_ids: Sequence[str] | np.ndarray, as_of_ms: np.ndarray) -> list[np.ndarray]:
        """Catalog rows each user showed interest in before ``as_of`` (training interactions)."""
        out = []
        for u, t in zip(user_ids, as_of_ms, strict=True):
            times, rows = self.histories.get(str(u), (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)))
            out.append(rows[times < int(t)])
        return out

    def score(
        self,
        queries: pd.DataFrame,
        as_of_ms: np.ndarray,
        exclusions: Sequence[Sequence[str]] | None = None,
    ) -> Scored:
        """Every source's scores and the merged candidates for a batch of queries."""
        n_users, n_items = len(queries), len(self.content_ids)
        seen = self.seen(list(queries["user_id"]), as_of_ms)
        excluded = np.zeros((n_users, n_items), dtype=bool)
        if self.config.evaluation.exclude_seen:
            for q, rows in enumerate(seen):
                excluded[q, rows] = True
        if exclusions is not None:
            for q, items in enumerate(exclusions):
                cols = self.column.get_indexer(np.asarray(list(items), dtype=object))
                excluded[q, cols[cols >= 0]] = True
        scores: dict[str, np.ndarray] = {}
        with torch.no_grad():
            scores["two_tower"] = self.index.scores(embed_users(self.retrieval, queries, self.spec)).numpy()
        if self.item_to_item is not None:
            lens = [len(r) for r in seen]
            history = interaction_matrix(
                np.repeat(np.arange(n_users), lens),
                np.concatenate(seen) if seen else np.zeros(0, dtype=np.int64),
                n_users,
                n_items,
            )
            scores["item_to_item"] = item_to_item_scores(history, self.i2i_columns, self.i2i_weights)
        else:
            scores["item_to_item"] = np.full((n_users, n_items), -np.inf, dtype=np.float32)
        cand = self.config.candidates
        popular = np.zeros((n_users, n_items), dtype=np.float32)
        fresh = np.zeros((n_users, n_items), dtype=np.float32)
        cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for q, t in enumerate(np.asarray(as_of_ms, dtype=np.int64)):
            if int(t) not in cache:
                recent = recent_counts(
                    self.times, self.rows, n_items, int(t), cand.popular_days, cand.popular_min_interactions
                )
                ages = release_age_days(self.release_ms, int(t))
                cache[int(t)] = (np.log1p(recent), new_release_scores(ages, recent, cand.new_release_days))
            popular[q], fresh[q] = cache[int(t)]
        scores["popular_now"], scores["new_releases"] = popular, fresh
        counts = {
            "two_tower": cand.two_tower,
            "item_to_item": cand.item_to_item,
            "popular_now": cand.popular_now,
            "new_releases": cand.new_releases,
        }
        merged = np.zeros((n_users, n_items), dtype=bool)
        for name, n in counts.items():
            if n == 0:
                continue
            merged |= top_mask(np.where(excluded, -np.inf, scores[name]), n, self.ties)
        return Scored(scores, merged & ~excluded, excluded)

    def features(self, scored: Scored, query_index: np.ndarray, rows: np.ndarray) -> pd.DataFrame:
        """The :data:`SOURCE_DENSE` features of flat (query, catalog row) pairs."""
        cand = self.config.candidates
        limits = {
            "two_tower": cand.two_tower,
            "item_to_item": cand.item_to_item,
            "popular_now": cand.popular_now,
            "new_releases": cand.new_releases,
        }
        out: dict[str, np.ndarray] = {}
        for name in SOURCES:
            matrix = np.where(scored.excluded, -np.inf, scored.scores[name])
            finite = np.isfinite(matrix)
            safe = np.where(finite, matrix, np.nan)
            mean = np.nanmean(np.where(finite.any(1, keepdims=True), safe, 0.0), axis=1, keepdims=True)
            std = np.nanstd(np.where(finite.any(1, keepdims=True), safe, 0.0), axis=1, keepdims=True)
            z = np.clip(np.nan_to_num((safe - mean) / np.where(std > 0, std, 1.0), nan=-5.0), -5.0, 10.0)
            r = np.empty(len(rows), dtype=np.float32)  # each title's place in the source's stable order
            for q in np.unique(query_index):
                mine = query_index == q
                r[mine] = stable_ranks(matrix[q], rows[mine])
            ok = finite[query_index, rows]
            out[f"source_{name}_rank"] = np.where(ok, 1.0 / np.log2(2.0 + r), 0.0)
            out[f"source_{name}_z"] = z[query_index, rows]
            out[f"source_{name}_in"] = (ok & (r < limits[name])).astype(np.float32)
        return pd.DataFrame(out)

    def pairs(self, queries: pd.DataFrame, scored: Scored, query_index: np.ndarray, rows: np.ndarray) -> pd.DataFrame:
        """Ranker rows of flat (query, catalog row) pairs: user, content, cross and source features."""
        frame = pair_rows(queries, query_index, self.content_ids[rows], self.catalog, self.snapshot)
        frame["history"] = queries["history"].to_numpy()[query_index]
        frame["event_timestamp"] = queries["event_timestamp"].to_numpy()[query_index]
        frame["propensity"] = 1.0
        if self.reads_sources or self.ranker is None:
            extra = self.features(scored, query_index, rows)
            for col in extra.columns:
                frame[col] = extra[col].to_numpy()
        return frame

    def rank_scores(self, frame: pd.DataFrame) -> np.ndarray:
        """The ranker's weighted head score of each row (the retrieval logit when there is no ranker)."""
        if self.ranker is None:
            return frame["source_two_tower_z"].to_numpy(dtype=float)
        probs = predict_heads(self.ranker, frame, self.catalog, self.spec)
        score = combined_score(probs, self.config.ranker)
        if not self.blend:
            return score
        return two_stage_scores(score, frame["source_item_to_item_z"].to_numpy(), self.blend)

    def score_pairs(
        self,
        user_ids: Sequence[str] | np.ndarray,
        as_of_ms: np.ndarray,
        query_index: np.ndarray,
        content_ids: np.ndarray,
    ) -> np.ndarray:
        """Ranker scores of given (query, title) pairs, flat (e.g. the titles each user was shown, for
        the logged view); a title outside the catalog scores -inf."""
        users = [str(u) for u in user_ids]
        query_index = np.asarray(query_index, dtype=np.int64)
        rows = self.column.get_indexer(np.asarray(content_ids, dtype=object).astype(str))
        out = np.full(len(query_index), -np.inf)
        for start in range(0, len(users), _CHUNK):
            mine = (query_index >= start) & (query_index < start + _CHUNK) & (rows >= 0)
            if not mine.any():
                continue
            times = np.asarray(as_of_ms)[start : start + _CHUNK]
            queries = self.queries(users[start : start + _CHUNK], times)
            scored = self.score(queries, times)
            frame = self.pairs(queries, scored, query_index[mine] - start, rows[mine])
            out[mine] = self.rank_scores(frame)
        return out

    # -- the top-K function ---------------------------------------------------------------------

    def recommend_many(
        self,
        user_ids: Sequence[str] | np.ndarray,
        k: int,
        exclusions: Sequence[Sequence[str]] | None = None,
        *,
        as_of_ms: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Top-``k`` titles per user, ranked by the ranker over the merged candidates.

        Returns:
            ``(content_ids [U, k] (None-padded), scores [U, k], source_tops)``, where
            ``source_tops[name]`` is each source's own top-``k`` ([U, k] content ids), for
            evaluating the sources alone.
        """
        users = [str(u) for u in user_ids]
        times = np.full(len(users), self.end_ms, dtype=np.int64) if as_of_ms is None else np.asarray(as_of_ms)
        ids = np.full((len(users), k), None, dtype=object)
        values = np.full((len(users), k), np.nan)
        tops: dict[str, np.ndarray] = {name: np.full((len(users), k), None, dtype=object) for name in SOURCES}
        for start in range(0, len(users), _CHUNK):
            part = slice(start, start + _CHUNK)
            queries = self.queries(users[part], times[part])
            scored = self.score(queries, times[part], None if exclusions is None else exclusions[part])
            for name in SOURCES:
                masked = np.where(scored.excluded, -np.inf, scored.scores[name])
                for q in range(len(queries)):
                    top = top_titles(masked[q], k)
                    top = top[np.argsort(-masked[q, top], kind="stable")]  # best first, ties by catalog order
                    tops[name][start + q, : len(top)] = self.content_ids[top]
            qidx, rows = np.nonzero(scored.candidates)
            if len(qidx) == 0:
                continue
            score = self.rank_scores(self.pairs(queries, scored, qidx, rows))
            order = np.lexsort((-score, qidx))
            qidx, rows, score = qidx[order], rows[order], score[order]
            first = np.searchsorted(qidx, np.arange(len(queries)), side="left")
            rank = np.arange(len(qidx)) - first[qidx]
            keep = rank < k
            ids[start + qidx[keep], rank[keep]] = self.content_ids[rows[keep]]
            values[start + qidx[keep], rank[keep]] = score[keep]
        return ids, values, tops

    @property
    def request_path(self) -> RequestPath:
        """This top-K function one request at a time (built on first use, then kept)."""
        with self._path_lock:
            if self._request_path is None:
                self._request_path = RequestPath(self)
            return self._request_path

    def recommend(
        self, user_id: str, k: int = 10, exclude: Sequence[str] = (), *, as_of_ms: int | None = None
    ) -> tuple[list[str], list[float]]:
        """The top-``k`` titles for one user, best first, and their ranker scores: the answer of
        :meth:`recommend_many` for this one query, computed by :attr:`request_path`.

        Args:
            user_id: The user (a new user gets the popular-now and new-release candidates).
            k: Titles returned (fewer when the sources propose fewer).
            exclude: Titles never to return (e.g. already on screen).
            as_of_ms: The time of the request (default: the end of the training window).
        """
        return self.request_path.recommend(str(user_id), k, exclude, as_of_ms=as_of_ms)


def reads_sources(train: pd.DataFrame) -> bool:
    """Whether the ranker of a window reads the sources' features: trained on the sources'
    candidates where the window logs no impressions (imported interactions); on logged traffic
    it learns from the logged impressions, where the sources' features are absent (zeros), as the
    serving path builds them. Measured: a candidate-trained ranker on the simulator's logged
    traffic fell to NDCG@10 0.104 against popularity's 0.261 over the titles shown."""
    return not logs_impressions(train)


def with_sources(
    bundle: ModelBundle, train: pd.DataFrame, catalog: pd.DataFrame, config: TrainingConfig
) -> ModelBundle:
    """``bundle`` with its item-to-item source fitted on ``train``, the training state its top-K
    function reads, and the candidate and evaluation settings of ``config``."""
    from dataclasses import replace

    from flywheel.models.bundle import training_state

    return replace(
        bundle,
        candidates_config=config.candidates,
        evaluation_config=config.evaluation,
        item_to_item=fit_item_to_item(train, catalog, config),
        state=training_state(train),
    )


def first_queries(later: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """One query per user of ``later``: the user and the time (ms) of the user's first row there."""
    first = later.sort_values("event_timestamp", kind="stable").groupby("user_id", sort=True).head(1)
    return first["user_id"].astype(str).to_numpy(dtype=object), _ms(first["event_timestamp"])


def labelled_candidates(
    recommender: Recommender, later: pd.DataFrame, *, negatives_per_user: int | None, seed: int = 0
) -> tuple[pd.DataFrame, float]:
    """Ranker rows for the users of ``later``, as of each one's first row there, labelled by ``later``.

    The rows are the merged candidates of the sources plus, where ``later`` logs impressions, every
    title shown to the user there (engaged with or not, with its logged position); each row's
    head labels are the user's responses to the title in ``later`` (0 when none). Where only
    engagements are logged (imported interactions), titles outside the candidates are left out:
    they would all be positives, and the ranker would learn that no source proposing a title
    makes it likely. Retrieved candidates without
    a logged response are kept up to ``negatives_per_user`` per user, sampled uniformly (None: all).

    Returns:
        The rows and the share of retrieved negatives kept.
    """
    users, times = first_queries(later)
    shown = logs_impressions(later)
    later = later.assign(user_id=later["user_id"].astype(str), content_id=later["content_id"].astype(str))
    labels = later.groupby(["user_id", "content_id"])[list(HEAD_NAMES)].max()
    logged = later.groupby(["user_id", "content_id"])["position"].min()
    rng = np.random.default_rng(seed)
    frames, kept, total = [], 0, 0
    for start in range(0, len(users), _CHUNK):
        part = slice(start, start + _CHUNK)
        queries = recommender.queries(list(users[part]), times[part])
        scored = recommender.score(queries, times[part])
        user_of = pd.Index(users[part])
        mine = labels.index.get_level_values(0).isin(user_of)
        lq = user_of.get_indexer(labels.index.get_level_values(0)[mine])
        lr = recommender.column.get_indexer(labels.index.get_level_values(1)[mine])
        found = np.zeros_like(scored.candidates)
        found[lq[lr >= 0], lr[lr >= 0]] = True
        if not shown:  # only engagements are logged: outside the candidates they would all be positives
            found &= scored.candidates
        negatives = scored.candidates & ~found
        total += int(negatives.sum())
        if negatives_per_user is not None:
            for q in range(len(queries)):
                cols = np.flatnonzero(negatives[q])
                if len(cols) > negatives_per_user:
                    negatives[q, rng.choice(cols, len(cols) - negatives_per_user, replace=False)] = False
        kept += int(negatives.sum())
        qidx, rows = np.nonzero(negatives | found)
        frame = recommender.pairs(queries, scored, qidx, rows)
        key = pd.MultiIndex.from_arrays([frame["user_id"].astype(str), frame["content_id"].astype(str)])
        answers = labels.reindex(key)
        for head in HEAD_NAMES:
            frame[head] = answers[head].fillna(0).to_numpy(dtype=np.float32)
        frame["position"] = logged.reindex(key).fillna(1).clip(lower=1).to_numpy(dtype=np.int64)
        frames.append(frame)
    data = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return data, (kept / total if total else 1.0)


def train_stacked_ranker(
    train: pd.DataFrame,
    catalog: pd.DataFrame,
    spec: FeatureSpec,
    retrieval: TwoTower,
    config: TrainingConfig,
) -> tuple[MultiTaskRanker, dict[str, float]]:
    """Train the multi-task ranker on the sources' candidates (see the module docstring).

    Returns:
        The ranker and counts (label users, rows, positives, sampling rate).

    Raises:
        ValueError: The training part cannot be split again, or no candidate was engaged with.
    """
    if logs_impressions(train):
        # logged traffic: the ranker learns P(response | shown) from every logged impression, real
        # negatives included, as the two stages always did there (see reads_sources)
        return train_ranker(train, catalog, spec, config.ranker, seed=config.seed), {"ranker.rows": float(len(train))}
    inner = split_window(train, config.holdout_fraction, config.evaluation.model_copy(update={"min_holdout_users": 1}))
    unranked = ModelBundle(
        spec,
        retrieval,
        build_ranker(spec, config.ranker),
        config.retrieval,
        config.ranker,
        config.candidates,
        config.evaluation,
        fit_item_to_item(inner.train, catalog, config),
    )
    sources = Recommender(unranked, catalog=catalog, train=inner.train, ranked=False)
    data, rate = labelled_candidates(
        sources, inner.holdout, negatives_per_user=config.candidates.negatives_per_user, seed=config.seed
    )
    if data.empty or not (data["click"] > 0).any():
        raise ValueError("stacked ranker: no candidate of the sources was engaged with in the label period")
    ranker = train_ranker(data, catalog, spec, config.ranker, seed=config.seed)
    with torch.no_grad():  # the sampling correction: logit + log(rate) undoes the negatives' downsampling
        ranker.heads.bias.add_(float(np.log(max(rate, 1e-6))))
    blend, tried = choose_source_blend(ranker, data, catalog, spec, config)
    info = {
        "ranker.label_users": float(data["user_id"].nunique()),
        "ranker.rows": float(len(data)),
        "ranker.positives": float((data["click"] > 0).sum()),
        "ranker.negative_sampling_rate": float(rate),
        "ranker.source_blend": float(blend),
        **tried,
    }
    return ranker, info
