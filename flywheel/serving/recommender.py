"""The recommend path of one model version: features -> retrieval -> ranking -> business rules.

Everything that depends only on the version and the catalog is computed once, at load
(:class:`CatalogIndex`): the item embeddings of the whole catalog (the two-tower index), the
catalog's ranker inputs (content and creator ids, genre rows) and release times. A request then
costs one user-tower pass, one matrix-vector product over the catalog and a top-k, one ranker pass
over a few hundred candidates, and the rules; nothing re-encodes the catalog.

The ranker inputs are built exactly as :func:`flywheel.models.encoding.encode_ranker` builds them
from :func:`flywheel.models.dataset.pair_rows` (a unit test pins the two, and the scores to
:func:`flywheel.models.bundle.score_candidates`); the final order is
:func:`flywheel.models.bundle.two_stage_score`, the one offline evaluation measures.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from opentelemetry import trace

from flywheel.config.features import DEFAULT_GENRES
from flywheel.config.serving import RulesConfig
from flywheel.models.bundle import ModelBundle, two_stage_score
from flywheel.models.contract import CONTENT_DENSE, CROSS_DENSE, USER_DENSE
from flywheel.models.encoding import LOG_SCALED, encode_catalog, genre_multi_hot
from flywheel.models.two_tower import TopKIndex
from flywheel.serving.features import FeatureSource, UserFeatures, default_user
from flywheel.serving.ranking import InProcessRanker, RankerBackend
from flywheel.serving.rules import RuleLimits, apply_rules

STAGES = ("features", "retrieval", "ranking", "rules")
_DAY_NS = 86_400 * 10**9


@dataclass(frozen=True)
class CatalogIndex:
    """What a version precomputes over the catalog (see the module docstring)."""

    content_ids: np.ndarray
    row_of: dict[str, int]
    index: TopKIndex
    scaled_embeddings: torch.Tensor
    """[N, E] item embeddings / temperature: a request's logits are one matrix-vector product."""
    item_bias: torch.Tensor
    item_idx: np.ndarray
    creator_idx: np.ndarray
    genre_hot: np.ndarray
    """[N, len(spec.genres)] genre rows of the ranker's dense input."""
    overlap_hot: np.ndarray
    """[N, user vector dim] DEFAULT_GENRES rows for the genre-overlap cross feature."""
    overlap_norm: np.ndarray
    release_days: np.ndarray
    """Release time in days since the epoch (NaN when unknown)."""
    release_order: np.ndarray
    """Rows sorted by release time (unknown first)."""
    sorted_release_days: np.ndarray
    """Release days in ``release_order`` (unknown as -inf)."""
    primary_genre: np.ndarray
    creator: np.ndarray

    @classmethod
    def build(cls, bundle: ModelBundle, catalog: pd.DataFrame) -> CatalogIndex:
        """Encode the catalog and embed every title (once per version)."""
        spec = bundle.spec
        cat = encode_catalog(catalog, spec)
        vector_dim = spec.user_vector_dim
        hot = genre_multi_hot(catalog["genres"], DEFAULT_GENRES).astype(float)
        hot = np.hstack([hot, np.zeros((len(hot), max(0, vector_dim - hot.shape[1])))])[:, :vector_dim]
        released = pd.to_datetime(catalog["release_ts"], utc=True)
        days = np.where(released.isna(), np.nan, released.astype("int64") / _DAY_NS).astype(float)
        ids = cat.content_ids.astype(str)
        index = TopKIndex.build(bundle.retrieval, cat)
        order = np.argsort(np.nan_to_num(days, nan=-np.inf), kind="stable")
        return cls(
            content_ids=ids.astype(object),
            row_of={cid: n for n, cid in enumerate(ids)},
            index=index,
            scaled_embeddings=(index.embeddings / index.temperature).contiguous(),
            item_bias=index.bias.contiguous(),
            item_idx=cat.item_idx.numpy(),
            creator_idx=cat.creator_idx.numpy(),
            genre_hot=cat.genres.numpy(),
            overlap_hot=hot,
            overlap_norm=np.linalg.norm(hot, axis=1),
            release_days=days,
            release_order=order,
            sorted_release_days=np.nan_to_num(days, nan=-np.inf)[order],
            primary_genre=np.array([_first(g) for g in catalog["genres"]], dtype=object),
            creator=catalog["creator_id"].fillna("").astype(str).to_numpy(dtype=object),
        )

    def new_release_rows(self, now_days: float, max_age_days: float) -> np.ndarray:
        """Rows released within ``max_age_days`` before ``now_days``."""
        released = self.sorted_release_days
        start = int(np.searchsorted(released, now_days - max_age_days, side="left"))
        end = int(np.searchsorted(released, now_days, side="right"))
        return self.release_order[start:end]


def _first(genres: Any) -> str:
    if isinstance(genres, list | tuple | np.ndarray) and len(genres):
        return str(genres[0])
    return ""


@dataclass
class Recommendation:
    """The answer of one version to one request, with what it took."""

    items: list[str]
    scores: list[float]
    features: dict[str, float | str]
    """The features the request was ranked with (for the prediction log)."""
    candidates: int
    stage_seconds: dict[str, float] = field(default_factory=dict)
    degraded: list[str] = field(default_factory=list)
    """Reasons the answer is degraded (``feature_store``, ``triton``), empty when it is not."""


class Recommender:
    """One model version ready to answer: bundle, catalog index, feature source, ranker backend."""

    def __init__(
        self,
        bundle: ModelBundle,
        catalog: pd.DataFrame,
        *,
        features: FeatureSource,
        version: str = "local",
        ranker: RankerBackend | None = None,
        candidates: int = 300,
        rules: RulesConfig | None = None,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.bundle = bundle
        self.catalog = CatalogIndex.build(bundle, catalog)
        self.features = features
        self.version = version
        self.in_process = InProcessRanker(bundle)
        self.ranker: RankerBackend = ranker or self.in_process
        self.candidates = candidates
        self.rules = rules or RulesConfig()
        self.tracer = tracer or trace.get_tracer("flywheel.serving")
        spec = bundle.spec
        self._user_pos = {u: i + 1 for i, u in enumerate(spec.users)}
        self._content_pos = {c: i + 1 for i, c in enumerate(spec.contents)}
        self._mean = np.asarray(spec.dense_mean, dtype=float)
        self._std = np.asarray(spec.dense_std, dtype=float)
        self._log_scaled = np.array([name in LOG_SCALED for name in spec.dense_names])
        self._device_pos = {d: i + 1 for i, d in enumerate(spec.devices)}

    @classmethod
    def from_folder(cls, folder: str | Path, **kwargs: Any) -> Recommender:
        """Load a bundle folder (ModelBundle files + ``catalog.parquet``)."""
        folder = Path(folder)
        catalog_path = folder / "catalog.parquet"
        if not catalog_path.exists():
            raise FileNotFoundError(f"{folder}: the bundle has no catalog.parquet")
        return cls(ModelBundle.load(folder), pd.read_parquet(catalog_path), **kwargs)

    # -- encoding ---------------------------------------------------------------------------

    def _scale(self, raw: np.ndarray, columns: slice) -> np.ndarray:
        """log1p on the log-scaled features, NaN -> 0, then the spec's standardization."""
        raw = np.where(self._log_scaled[columns], np.log1p(np.clip(raw, 0, None)), raw)
        return (np.nan_to_num(raw, nan=0.0) - self._mean[columns]) / self._std[columns]

    def _history(self, watched: Sequence[str]) -> np.ndarray:
        length = self.bundle.spec.history_length
        out = np.zeros((1, length), dtype=np.int64)
        ids = [self._content_pos.get(c, 0) for c in list(watched)[:length]]
        out[0, : len(ids)] = ids
        return out

    def user_embedding(self, user_id: str, user: UserFeatures, history: np.ndarray) -> torch.Tensor:
        """The user tower's embedding of the request's user, [1, E]."""
        n_user = len(USER_DENSE)
        raw = np.array([[user.dense.get(name, 0.0) for name in USER_DENSE]], dtype=float)
        dense = np.hstack([self._scale(raw, slice(0, n_user)), np.asarray([user.genre_affinity], dtype=float)])
        user_idx = torch.tensor([self._user_pos.get(user_id, 0)], dtype=torch.int64)
        with torch.inference_mode():
            return self.bundle.retrieval.user_tower(
                user_idx, torch.from_numpy(dense.astype(np.float32)), torch.from_numpy(history)
            )

    def ranker_inputs(
        self,
        user_id: str,
        user: UserFeatures,
        rows: np.ndarray,
        content: np.ndarray,
        retrieval_logit: np.ndarray,
        history: np.ndarray,
        now_days: float,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ranker's (sparse, dense, history) for the user and the candidate ``rows``.

        ``content`` holds the candidates' content features in CONTENT_DENSE order; the release
        recency is computed from the catalog at ``now_days`` (as the training frames compute it).
        """
        cat, n = self.catalog, len(rows)
        device = self._device_pos.get(user.device_type, 0)
        sparse = np.empty((n, 4), dtype=np.int64)
        sparse[:, 0] = self._user_pos.get(user_id, 0)
        sparse[:, 1] = cat.item_idx[rows]
        sparse[:, 2] = cat.creator_idx[rows]
        sparse[:, 3] = device
        vector = np.asarray(user.genre_affinity, dtype=float)
        overlap = (cat.overlap_hot[rows] @ vector) / (np.linalg.norm(vector) * cat.overlap_norm[rows] + 1e-9)
        values: dict[str, np.ndarray] = {name: np.full(n, float(user.dense.get(name, 0.0))) for name in USER_DENSE}
        for j, name in enumerate(CONTENT_DENSE):
            values[name] = content[:, j].astype(float)
        values["content_release_recency_days"] = now_days - cat.release_days[rows]
        values[CROSS_DENSE[0]] = overlap
        names = self.bundle.spec.dense_names
        raw = np.stack([values[name] for name in names], axis=1)
        blocks = [
            self._scale(raw, slice(0, len(names))),
            np.broadcast_to(vector, (n, len(vector))),
            cat.genre_hot[rows],
        ]
        if self.bundle.ranker.use_retrieval_score:
            blocks.append(retrieval_logit.reshape(-1, 1))
        dense = np.hstack(blocks).astype(np.float32)
        return sparse, dense, np.repeat(history, n, axis=0)

    # -- the request path -------------------------------------------------------------------

    @contextmanager
    def _stage(self, name: str, timings: dict[str, float], **attributes: Any) -> Any:
        start = time.perf_counter()
        with self.tracer.start_as_current_span(name, attributes=attributes) as span:
            yield span
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start

    def recommend(
        self, user_id: str, k: int, exclude: Sequence[str] = (), *, now: pd.Timestamp | None = None
    ) -> Recommendation:
        """The top ``k`` titles for ``user_id``, never one of ``exclude`` (the titles the user watched).

        ``exclude`` doubles as the user's recent watch history (most recent first) for the towers.
        A feature store that fails degrades the request to default features (``degraded`` says so);
        a ranker backend that fails degrades it to the in-process ranker.
        """
        timings: dict[str, float] = {}
        degraded: list[str] = []
        now_days = (now or pd.Timestamp.now(tz="UTC")).value / _DAY_NS
        history = self._history(exclude)
        cat = self.catalog
        with self.tracer.start_as_current_span(
            "recommend", attributes={"model.version": self.version, "request.k": k}
        ) as root:
            with self._stage("features", timings):
                try:
                    user = self.features.user(user_id)
                except Exception:  # noqa: BLE001 - any store failure degrades, never fails the request
                    user, degraded = default_user(self.bundle.spec.user_vector_dim), ["feature_store"]
            with self._stage("retrieval", timings, **{"retrieval.catalog": len(cat.content_ids)}) as span:
                with torch.inference_mode():  # the index's logits; torch's gemv (numpy's BLAS threads oversubscribe)
                    user_vector = self.user_embedding(user_id, user, history)[0]
                    scores = torch.addmv(cat.item_bias, cat.scaled_embeddings, user_vector).numpy()
                excluded = [r for r in map(cat.row_of.get, exclude) if r is not None]
                if excluded:
                    scores[excluded] = -np.inf
                rows = _top(scores, min(self.candidates, len(scores)))
                fresh = cat.new_release_rows(now_days, self.rules.new_release_days)
                if len(fresh) and self.rules.new_release_candidates:
                    fresh = fresh[np.isfinite(scores[fresh])]
                    best = fresh[_top(scores[fresh], min(self.rules.new_release_candidates, len(fresh)))]
                    rows = np.concatenate([rows, best[~np.isin(best, rows)]])
                span.set_attribute("retrieval.candidates", len(rows))
                ids = cat.content_ids[rows]
            with self._stage("features", timings, **{"features.part": "content"}):
                if "feature_store" in degraded:
                    content = np.zeros((len(rows), len(CONTENT_DENSE)))
                else:
                    try:
                        content = self.features.content(list(ids))
                    except Exception:  # noqa: BLE001
                        content, degraded = np.zeros((len(rows), len(CONTENT_DENSE))), [*degraded, "feature_store"]
            with self._stage("ranking", timings, **{"ranking.backend": self.ranker.name}) as span:
                logit = scores[rows].astype(np.float64)
                inputs = self.ranker_inputs(user_id, user, rows, content, logit, history, now_days)
                try:
                    ranker_score = self.ranker.score(*inputs)
                except Exception:  # noqa: BLE001 - an unreachable predictor degrades to in-process
                    if self.ranker is self.in_process:
                        raise
                    degraded.append(self.ranker.name)
                    span.set_attribute("ranking.fallback", self.in_process.name)
                    ranker_score = self.in_process.score(*inputs)
                final = two_stage_score(ranker_score, logit, blend=self.bundle.ranker_config.retrieval_blend)
            with self._stage("rules", timings):
                fresh_set = set(fresh.tolist())
                chosen = apply_rules(
                    list(ids),
                    final.tolist(),
                    genres=list(cat.primary_genre[rows]),
                    creators=list(cat.creator[rows]),
                    new_release=[r in fresh_set for r in rows.tolist()],
                    watched=set(exclude),
                    limits=RuleLimits(k, self.rules.max_per_genre, self.rules.max_per_creator),
                )
            root.set_attribute("user.known", user.known)
            if degraded:
                root.set_attribute("degraded", ",".join(degraded))
        return Recommendation(
            items=[str(ids[i]) for i in chosen],
            scores=[float(final[i]) for i in chosen],
            features=user.as_log(),
            candidates=len(rows),
            stage_seconds=timings,
            degraded=degraded,
        )


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` largest scores, best first (argpartition, then a sort of the k)."""
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k >= len(scores):
        return np.argsort(-scores, kind="stable")
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part], kind="stable")]
