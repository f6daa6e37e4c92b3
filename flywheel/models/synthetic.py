"""A small simulated platform with known generative truth, for tests, benchmarks and demos.

Users and items have latent taste vectors; an item's vector comes from its genres and its
creator (so content features carry signal for cold start), its synopsis words from its genres.
A logging policy fills slates of ``slate_size`` positions; a position is examined with
probability ``position ** -examination_power`` (the logged propensity) and an examined item is
clicked with a probability rising with the true affinity. The later labels (watch > 50%,
complete, like, add to list) follow from the click and the affinity. ``true_affinity`` is the
oracle. The full platform simulator lives in ``flywheel.simulator.engine``; this module only
produces training-set frames in the contract of :mod:`flywheel.models.contract`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from flywheel.config.features import DEFAULT_GENRES

GENRES = DEFAULT_GENRES[:8]
"""The genres of the synthetic catalog (the first ones of the feature platform's vocabulary)."""
DEVICES = ("tv", "mobile", "tablet", "web")
DAY = pd.Timedelta(days=1)
SlateOrder = Literal["policy", "random", "recency"]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class SyntheticWorld:
    """Users, items and their latent vectors; generates impressions and answers the oracle."""

    user_ids: np.ndarray
    content_ids: np.ndarray
    user_vectors: np.ndarray
    item_vectors: np.ndarray
    item_quality: np.ndarray
    genre_vectors: np.ndarray
    catalog: pd.DataFrame
    user_genre_affinity: np.ndarray
    user_activity: np.ndarray
    user_device: np.ndarray
    start: pd.Timestamp
    days: float

    def true_affinity(self, user_ids: np.ndarray, content_ids: np.ndarray) -> np.ndarray:
        """The oracle: true affinity of each (user, item) pair (a matrix, users x items)."""
        u = pd.Index(self.user_ids).get_indexer(np.asarray(user_ids))
        i = pd.Index(self.content_ids).get_indexer(np.asarray(content_ids))
        if (u < 0).any() or (i < 0).any():
            raise KeyError("unknown user or content id")
        return self.user_vectors[u] @ self.item_vectors[i].T + self.item_quality[i][None, :]

    @property
    def oracle(self) -> LatentOracle:
        """The oracle for evaluation: :meth:`true_affinity` plus the chance of relevance."""
        return LatentOracle(self.user_ids, self.content_ids, self.user_vectors, self.item_vectors, self.item_quality)

    def save_oracle(self, path: str | Path) -> Path:
        """Write the latent vectors to ``path`` (npz), readable by :class:`LatentOracle`."""
        path = Path(path)
        np.savez(
            path,
            user_ids=self.user_ids.astype(str),
            content_ids=self.content_ids.astype(str),
            user_vectors=self.user_vectors,
            item_vectors=self.item_vectors,
            item_quality=self.item_quality,
        )
        return path

    def impressions(
        self,
        n_requests: int,
        *,
        seed: int,
        start: pd.Timestamp | None = None,
        days: float | None = None,
        slate_size: int = 10,
        examination_power: float = 1.0,
        order: SlateOrder = "policy",
        personalization: float = 1.5,
        quality_weight: float = 0.5,
    ) -> pd.DataFrame:
        """Logged impressions with labels and features, in the training-set contract.

        Args:
            n_requests: Slates shown (rows = n_requests * slate_size).
            seed: Random seed.
            start: First request time (the world's start when None).
            days: Span of the requests (the world's span when None).
            slate_size: Positions per slate.
            examination_power: Examination probability is ``position ** -power`` (0: no bias).
            order: Slate order: by the policy score, random, or newest first (with jitter).
            personalization: Weight of the true affinity in the logging policy.
            quality_weight: Weight of the item quality (popularity) in the logging policy.
        """
        rng = np.random.default_rng(seed)
        start = self.start if start is None else start
        days = self.days if days is None else days
        n_users, n_items = len(self.user_ids), len(self.content_ids)
        ts = (start + pd.to_timedelta(np.sort(rng.uniform(0, days, n_requests)), unit="D")).tz_convert(None)
        p_user = self.user_activity / self.user_activity.sum()
        users = rng.choice(n_users, size=n_requests, p=p_user)
        released = self.catalog["release_ts"].dt.tz_convert(None).to_numpy()
        available = released[None, :] <= ts.to_numpy()[:, None]
        aff = self.user_vectors[users] @ self.item_vectors.T + self.item_quality[None, :]
        new_boost = 1.0 * ((ts.to_numpy()[:, None] - released[None, :]) < np.timedelta64(3, "D"))
        policy = (
            quality_weight * self.item_quality[None, :]
            + personalization * aff
            + new_boost
            + rng.gumbel(size=(n_requests, n_items))
        )
        policy = np.where(available, policy, -np.inf)
        slate = np.argsort(-policy, axis=1)[:, :slate_size]
        if order == "random":
            slate = rng.permuted(slate, axis=1)
        elif order == "recency":  # newest first, with jitter: position correlates with recency
            rank = np.argsort(np.argsort(-released[slate].astype("int64"), axis=1), axis=1)
            key = rank + rng.normal(0, 2.0, size=slate.shape)
            slate = np.take_along_axis(slate, np.argsort(key, axis=1), axis=1)
        positions = np.tile(np.arange(1, slate_size + 1), n_requests)
        items = slate.reshape(-1)
        req_users = np.repeat(users, slate_size)
        req_ts = np.repeat(ts.to_numpy(), slate_size)
        a = aff[np.repeat(np.arange(n_requests), slate_size), items]
        propensity = positions.astype(float) ** -examination_power
        examined = rng.random(len(items)) < propensity
        click = examined & (rng.random(len(items)) < _sigmoid(1.5 * a - 1.0))
        watch = click & (rng.random(len(items)) < _sigmoid(1.5 * a + 0.5))
        complete = watch & (rng.random(len(items)) < _sigmoid(a - 0.3))
        like = watch & (rng.random(len(items)) < _sigmoid(1.5 * a - 1.0))
        add = click & (rng.random(len(items)) < _sigmoid(a - 1.5))
        device = np.where(
            rng.random(len(items)) < 0.85,
            self.user_device[req_users],
            rng.choice(np.array(DEVICES), size=len(items)),
        )
        q = self.item_quality[items]
        recency = (req_ts - released[items]) / np.timedelta64(1, "D")
        user_aff = self.user_genre_affinity[req_users]
        item_hot = np.stack(self.catalog["genre_vector"].to_numpy())[items]
        overlap = (user_aff * item_hot).sum(1) / (
            np.linalg.norm(user_aff, axis=1) * np.linalg.norm(item_hot, axis=1) + 1e-9
        )
        activity = self.user_activity[req_users]
        frame = pd.DataFrame(
            {
                "user_id": self.user_ids[req_users],
                "content_id": self.content_ids[items],
                "event_timestamp": pd.to_datetime(req_ts, utc=True),
                "click": click.astype("int8"),
                "watch_50": watch.astype("int8"),
                "complete": complete.astype("int8"),
                "like": like.astype("int8"),
                "add_to_list": add.astype("int8"),
                "position": positions.astype("int32"),
                "propensity": propensity,
                "device_type": device,
                "user_total_watch_hours_7d": activity * 4 + rng.gamma(1.0, 1.0, len(items)),
                "user_skip_rate_7d": _sigmoid(rng.normal(-1, 0.5, len(items))),
                "user_content_completion_rate_30d": _sigmoid(rng.normal(0, 0.5, len(items))),
                "user_genre_affinity_vector": list(user_aff),
                "content_total_plays_7d": rng.poisson(np.exp(1.5 + q)).astype(float),
                "content_avg_completion_rate": _sigmoid(q + rng.normal(0, 0.3, len(items))),
                "content_release_recency_days": recency,
                "content_play_to_impression_ratio": _sigmoid(q - 1 + rng.normal(0, 0.3, len(items))),
                "user_x_content_genre_overlap": overlap,
            }
        )
        return frame.reset_index(drop=True)


def make_world(
    *,
    n_users: int = 400,
    n_items: int = 300,
    latent_dim: int = 8,
    new_item_share: float = 0.1,
    days: float = 14.0,
    start: str = "2026-11-01",
    seed: int = 0,
) -> SyntheticWorld:
    """Draw users, items (with genres, creators, synopses) and their latent vectors."""
    rng = np.random.default_rng(seed)
    g = len(GENRES)
    genre_vectors = rng.normal(size=(g, latent_dim))
    genre_vectors /= np.linalg.norm(genre_vectors, axis=1, keepdims=True)
    n_creators = max(2, n_items // 6)
    creator_vectors = rng.normal(0, 0.4, size=(n_creators, latent_dim))
    primary = rng.integers(0, g, n_items)
    second = np.where(rng.random(n_items) < 0.4, rng.integers(0, g, n_items), primary)
    creator = rng.integers(0, n_creators, n_items)
    item_vectors = (
        genre_vectors[primary]
        + 0.5 * genre_vectors[second] * (second != primary)[:, None]
        + creator_vectors[creator]
        + rng.normal(0, 0.25, size=(n_items, latent_dim))
    )
    quality = rng.normal(0, 0.5, n_items)
    t0 = pd.Timestamp(start, tz="UTC")
    is_new = rng.random(n_items) < new_item_share
    release = np.where(
        is_new,
        rng.uniform(0.3 * days, days, n_items),
        -rng.uniform(1, 365, n_items),
    )
    release_ts = t0 + pd.to_timedelta(release, unit="D")
    genres = [[GENRES[p]] if p == s else [GENRES[p], GENRES[s]] for p, s in zip(primary, second, strict=True)]
    words = [
        " ".join(
            [f"{GENRES[p]}word{k}" for k in rng.integers(0, 12, 5)]
            + [f"creator{c}tone" for _ in range(2)]
            + [f"filler{k}" for k in rng.integers(0, 200, 4)]
        )
        for p, c in zip(primary, creator, strict=True)
    ]
    hot = np.zeros((n_items, len(DEFAULT_GENRES) + 1))
    hot[np.arange(n_items), [DEFAULT_GENRES.index(GENRES[p]) for p in primary]] = 1.0
    hot[np.arange(n_items), [DEFAULT_GENRES.index(GENRES[s]) for s in second]] = 1.0
    content_ids = np.array([f"c{i:05d}" for i in range(n_items)], dtype=object)
    catalog = pd.DataFrame(
        {
            "content_id": content_ids,
            "content_type": "movie",
            "genres": genres,
            "primary_genre": [GENRES[p] for p in primary],
            "creator_id": [f"cr{c:04d}" for c in creator],
            "duration_seconds": rng.uniform(1200, 7200, n_items).round(),
            "release_ts": release_ts,
            "synopsis": words,
            "genre_vector": list(hot),
        }
    )
    fav = rng.integers(0, g, (n_users, 2))
    user_vectors = (
        1.2 * genre_vectors[fav[:, 0]] + 0.6 * genre_vectors[fav[:, 1]] + rng.normal(0, 0.3, size=(n_users, latent_dim))
    )
    logits = 3.0 * user_vectors @ genre_vectors.T
    small = np.exp(logits - logits.max(1, keepdims=True))
    small /= small.sum(1, keepdims=True)
    # laid out like the feature platform's vectors: DEFAULT_GENRES + an "other" slot
    slots = [DEFAULT_GENRES.index(name) for name in GENRES]
    user_aff = np.zeros((n_users, len(DEFAULT_GENRES) + 1))
    user_aff[:, slots] = small
    return SyntheticWorld(
        user_ids=np.array([f"u{u:05d}" for u in range(n_users)], dtype=object),
        content_ids=content_ids,
        user_vectors=user_vectors,
        item_vectors=item_vectors,
        item_quality=quality,
        genre_vectors=genre_vectors,
        catalog=catalog,
        user_genre_affinity=user_aff,
        user_activity=rng.lognormal(0, 0.6, n_users),
        user_device=rng.choice(np.array(DEVICES), size=n_users),
        start=t0,
        days=days,
    )


class LatentOracle:
    """The synthetic world's oracle: true affinity logits and the chance of relevance."""

    def __init__(
        self,
        user_ids: np.ndarray,
        content_ids: np.ndarray,
        user_vectors: np.ndarray,
        item_vectors: np.ndarray,
        item_quality: np.ndarray,
    ) -> None:
        self._users = pd.Index(np.asarray(user_ids, dtype=str))
        self._items = pd.Index(np.asarray(content_ids, dtype=str))
        self._u, self._v, self._q = user_vectors, item_vectors, item_quality

    @classmethod
    def load(cls, path: str | Path) -> LatentOracle:
        """The oracle written by :meth:`SyntheticWorld.save_oracle`."""
        data = np.load(Path(path), allow_pickle=False)
        return cls(
            data["user_ids"], data["content_ids"], data["user_vectors"], data["item_vectors"], data["item_quality"]
        )

    def __call__(self, user_ids: np.ndarray, content_ids: np.ndarray) -> np.ndarray:
        """True affinity, users x items; unknown ids score -inf."""
        u = self._users.get_indexer(np.asarray(user_ids, dtype=str))
        i = self._items.get_indexer(np.asarray(content_ids, dtype=str))
        scores = self._u[u] @ self._v[i].T + self._q[i][None, :]
        scores[u < 0, :] = -np.inf
        scores[:, i < 0] = -np.inf
        return scores

    @staticmethod
    def relevance_probability(affinity: np.ndarray) -> np.ndarray:
        """P(watched | shown at full examination): the world's click x watch model (0 where -inf)."""
        a = np.where(np.isfinite(affinity), affinity, -np.inf)
        return _sigmoid(1.5 * a - 1.0) * _sigmoid(1.5 * a + 0.5)
