"""Turning contract frames into tensors: vocabularies, scaling, synopsis hashing, watch history.

Everything the models need to encode a row is fitted on the training part of a window and kept
in a :class:`FeatureSpec` (JSON), shipped with the model so that serving encodes alike.
Index 0 of every vocabulary is the unknown (or padding) id: a new item, creator or user gets it,
and the models are trained with id dropout so that the unknown id is a working cold-start path.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from flywheel.models.contract import CONTENT_DENSE, CROSS_DENSE, SOURCE_DENSE, USER_DENSE, USER_VECTOR

_WORD = re.compile(r"[a-z0-9]+")
LOG_SCALED = frozenset({"content_total_plays_7d", "user_total_watch_hours_7d", "content_release_recency_days"})


@dataclass(frozen=True)
class FeatureSpec:
    """Vocabularies and scaling fitted on a training window."""

    users: tuple[str, ...]
    contents: tuple[str, ...]
    creators: tuple[str, ...]
    devices: tuple[str, ...]
    genres: tuple[str, ...]
    dense_names: tuple[str, ...]
    dense_mean: tuple[float, ...]
    dense_std: tuple[float, ...]
    user_vector_dim: int
    synopsis_buckets: int
    synopsis_tokens: int
    history_length: int
    id_selection: dict[str, float] = field(default_factory=dict)
    """How the id vocabularies were chosen: ``chosen`` (index into ID_CHOICES of
    :mod:`flywheel.models.ids`) and the validation NDCG@10 of every choice tried (empty when fixed)."""

    def to_json(self) -> str:
        """The spec as JSON text."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        """Read a spec written by :meth:`to_json`."""
        raw = json.loads(text)
        kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
        return cls(**kwargs)

    def save(self, path: str | Path) -> None:
        """Write the spec to ``path``."""
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> FeatureSpec:
        """Read a spec from ``path``."""
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    @property
    def user_dense_dim(self) -> int:
        """Width of the user tower's dense input."""
        return len(USER_DENSE) + self.user_vector_dim

    @property
    def ranker_dense_dim(self) -> int:
        """Width of the ranker's dense input."""
        return len(self.dense_names) + self.user_vector_dim + len(self.genres)


def _index(vocab: tuple[str, ...], values: pd.Series | np.ndarray) -> np.ndarray:
    idx = pd.Index(vocab).get_indexer(np.asarray(values, dtype=object))
    return (idx + 1).astype(np.int64)  # -1 (unknown) -> 0


def _dense_raw(frame: pd.DataFrame, names: tuple[str, ...]) -> np.ndarray:
    cols = []
    for name in names:
        if name not in frame.columns and name.startswith("source_"):
            cols.append(np.zeros(len(frame)))  # a frame not built by the candidate sources
            continue
        x = frame[name].to_numpy(dtype=float)
        cols.append(np.log1p(np.clip(x, 0, None)) if name in LOG_SCALED else x)
    return np.nan_to_num(np.stack(cols, axis=1), nan=0.0) if cols else np.zeros((len(frame), 0))


def fit_spec(
    train: pd.DataFrame,
    catalog: pd.DataFrame,
    *,
    synopsis_buckets: int = 4096,
    synopsis_tokens: int = 32,
    history_length: int = 20,
    user_ids: bool = True,
    item_ids: bool = True,
) -> FeatureSpec:
    """Fit vocabularies (from the training rows; all catalog creators and genres) and scaling.

    With ``user_ids`` False the user vocabulary is empty: every user gets the unknown id, and the
    models describe users by their features and watch history only; with ``item_ids`` False the
    same holds for titles (described by their content only).
    """
    names = USER_DENSE + CONTENT_DENSE + CROSS_DENSE + SOURCE_DENSE
    raw = _dense_raw(train, names)
    raw[:, [names.index(n) for n in SOURCE_DENSE]] = 0.0  # bounded by construction: mean 0, std 1
    std = raw.std(0)
    vector_dim = len(np.asarray(train[USER_VECTOR].iloc[0])) if len(train) else 0
    return FeatureSpec(
        users=tuple(sorted(train["user_id"].astype(str).unique())) if user_ids else (),
        contents=tuple(sorted(train["content_id"].astype(str).unique())) if item_ids else (),
        creators=tuple(sorted(catalog["creator_id"].astype(str).unique())),
        devices=tuple(sorted(train["device_type"].astype(str).unique())),
        genres=tuple(sorted({g for gs in catalog["genres"] for g in gs})),
        dense_names=names,
        dense_mean=tuple(float(v) for v in raw.mean(0)),
        dense_std=tuple(float(v) if v > 1e-9 else 1.0 for v in std),
        user_vector_dim=vector_dim,
        synopsis_buckets=synopsis_buckets,
        synopsis_tokens=synopsis_tokens,
        history_length=history_length,
    )


def synopsis_token_ids(texts: pd.Series | list[str], buckets: int, length: int) -> np.ndarray:
    """Hash the words of each text into ``1..buckets`` (stable crc32), padded with 0."""
    out = np.zeros((len(texts), length), dtype=np.int64)
    for row, text in enumerate(texts):
        words = _WORD.findall(str(text or "").lower())[:length]
        out[row, : len(words)] = [zlib.crc32(w.encode()) % buckets + 1 for w in words]
    return out


def genre_multi_hot(genres: pd.Series, vocab: tuple[str, ...]) -> np.ndarray:
    """Multi-hot genre rows over ``vocab`` (unknown genres are dropped)."""
    pos = {g: i for i, g in enumerate(vocab)}
    out = np.zeros((len(genres), len(vocab)), dtype=np.float32)
    for row, gs in enumerate(genres):
        for g in gs if gs is not None else ():
            if g in pos:
                out[row, pos[g]] = 1.0
    return out


@dataclass(frozen=True)
class CatalogTensors:
    """The item tower's inputs for every catalog item, in catalog order."""

    content_ids: np.ndarray
    item_idx: torch.Tensor
    creator_idx: torch.Tensor
    genres: torch.Tensor
    tokens: torch.Tensor

    def rows(self, content_ids: np.ndarray) -> np.ndarray:
        """Catalog row of each id (-1 when the catalog lacks it)."""
        return pd.Index(self.content_ids).get_indexer(np.asarray(content_ids, dtype=object))


def encode_catalog(catalog: pd.DataFrame, spec: FeatureSpec) -> CatalogTensors:
    """Encode the static content features of the whole catalog."""
    return CatalogTensors(
        content_ids=catalog["content_id"].astype(str).to_numpy(dtype=object),
        item_idx=torch.from_numpy(_index(spec.contents, catalog["content_id"].astype(str))),
        creator_idx=torch.from_numpy(_index(spec.creators, catalog["creator_id"].astype(str))),
        genres=torch.from_numpy(genre_multi_hot(catalog["genres"], spec.genres)),
        tokens=torch.from_numpy(synopsis_token_ids(catalog["synopsis"], spec.synopsis_buckets, spec.synopsis_tokens)),
    )


def watch_history(
    frame: pd.DataFrame,
    users: np.ndarray,
    times: np.ndarray,
    *,
    length: int,
    labels: tuple[str, ...] = ("click", "watch_50", "complete", "like", "add_to_list"),
) -> list[list[str]]:
    """The last ``length`` items each user showed interest in strictly before a time.

    Args:
        frame: Logged examples (user_id, content_id, event_timestamp and the labels).
        users: The query users.
        times: The query times (same length as ``users``).
        length: Items kept, most recent first (an item engaged with twice appears twice).
        labels: The labels that signal interest (any of them set): every interest signal by
            default - plays and clicks, watches past half, completions, likes (imported ratings
            at or above the like threshold), adds to list.
    """
    present = [c for c in labels if c in frame.columns]
    interest = (frame[present].to_numpy(dtype=float) > 0).any(axis=1)
    pos = frame.loc[interest, ["user_id", "content_id", "event_timestamp"]]
    pos = pos.sort_values("event_timestamp", kind="stable")
    by_user = {
        u: (g["event_timestamp"].to_numpy(), g["content_id"].astype(str).to_numpy())
        for u, g in pos.groupby("user_id", sort=False)
    }
    times = np.asarray(pd.to_datetime(times, utc=True).to_numpy())
    out: list[list[str]] = []
    for u, t in zip(np.asarray(users), times, strict=True):
        hit = by_user.get(u)
        if hit is None:
            out.append([])
            continue
        end = int(np.searchsorted(hit[0], t, side="left"))
        out.append(list(hit[1][max(0, end - length) : end][::-1]))
    return out


def add_history(
    frame: pd.DataFrame,
    *,
    length: int,
    source: pd.DataFrame | None = None,
    labels: tuple[str, ...] = ("click", "watch_50", "complete", "like", "add_to_list"),
) -> pd.DataFrame:
    """Copy of ``frame`` with a ``history`` column (point-in-time, from ``source`` or itself; see
    :func:`watch_history` for ``labels``)."""
    out = frame.copy()
    out["history"] = watch_history(
        frame if source is None else source,
        out["user_id"].to_numpy(),
        out["event_timestamp"].to_numpy(),
        length=length,
        labels=labels,
    )
    return out


def encode_users(frame: pd.DataFrame, spec: FeatureSpec) -> dict[str, torch.Tensor]:
    """The user tower's inputs (``frame`` needs a ``history`` column, see :func:`add_history`)."""
    n_user = len(USER_DENSE)
    raw = _dense_raw(frame, USER_DENSE)
    mean = np.asarray(spec.dense_mean[:n_user])
    std = np.asarray(spec.dense_std[:n_user])
    vec = _vectors(frame[USER_VECTOR], spec.user_vector_dim)
    return {
        "user_idx": torch.from_numpy(_index(spec.users, frame["user_id"].astype(str))),
        "user_dense": torch.from_numpy(np.hstack([(raw - mean) / std, vec]).astype(np.float32)),
        "history": encode_history(frame, spec),
    }


def encode_history(frame: pd.DataFrame, spec: FeatureSpec) -> torch.Tensor:
    """[B, history_length] content indices of the ``history`` column (zeros when absent)."""
    history = np.zeros((len(frame), spec.history_length), dtype=np.int64)
    if "history" not in frame.columns:
        return torch.from_numpy(history)
    content_pos = {c: i + 1 for i, c in enumerate(spec.contents)}
    for row, items in enumerate(frame["history"]):
        ids = [content_pos.get(c, 0) for c in list(items if items is not None else [])[: spec.history_length]]
        history[row, : len(ids)] = ids
    return torch.from_numpy(history)


def _vectors(series: pd.Series, dim: int) -> np.ndarray:
    out = np.zeros((len(series), dim), dtype=np.float32)
    for row, v in enumerate(series):
        if v is not None:
            arr = np.asarray(v, dtype=np.float32)[:dim]
            out[row, : len(arr)] = arr
    return out


@dataclass(frozen=True)
class RankerCatalog:
    """The ranker's content-side inputs of every catalog title, in catalog order (encoded once)."""

    content_idx: np.ndarray
    """[N] content vocabulary ids (0: unknown)."""
    creator_idx: np.ndarray
    """[N] creator vocabulary ids (0: unknown)."""
    genres: np.ndarray
    """[N, len(spec.genres)] multi-hot genres (float32)."""


def encode_ranker_catalog(catalog: pd.DataFrame, spec: FeatureSpec) -> RankerCatalog:
    """The ranker's content ids, creators and genres of the catalog's titles (see :func:`encode_ranker`)."""
    return RankerCatalog(
        content_idx=_index(spec.contents, catalog["content_id"].astype(str)),
        creator_idx=_index(spec.creators, catalog["creator_id"].astype(str)),
        genres=genre_multi_hot(catalog["genres"], spec.genres),
    )


def encode_ranker(
    frame: pd.DataFrame, catalog: pd.DataFrame, spec: FeatureSpec, *, retrieval_score: bool = False
) -> dict[str, torch.Tensor]:
    """The ranker's inputs: sparse ids [B, 4] (user, content, creator, device), dense [B, D], history [B, L].

    Creator and genres come from ``catalog`` (joined on content_id, see
    :func:`encode_ranker_catalog`); unknown items get the unknown creator and no genres. With
    ``retrieval_score`` the frame's ``retrieval_score`` column (the two-tower cosine) is the last
    dense column.

    Raises:
        ValueError: ``retrieval_score`` is asked for and the frame lacks the column.
    """
    rows = pd.Index(catalog["content_id"].astype(str)).get_indexer(frame["content_id"].astype(str))
    known = (rows >= 0)[:, None]
    content = encode_ranker_catalog(catalog, spec)
    unknown_creator = _index(spec.creators, np.asarray([""], dtype=object))[0]
    creator = np.where(known[:, 0], content.creator_idx[np.clip(rows, 0, None)], unknown_creator)
    hot = np.where(known, content.genres[np.clip(rows, 0, None)], 0.0)
    sparse = np.stack(
        [
            _index(spec.users, frame["user_id"].astype(str)),
            _index(spec.contents, frame["content_id"].astype(str)),
            creator,
            _index(spec.devices, frame["device_type"].astype(str)),
        ],
        axis=1,
    )
    raw = _dense_raw(frame, spec.dense_names)
    dense = (raw - np.asarray(spec.dense_mean)) / np.asarray(spec.dense_std)
    vec = _vectors(frame[USER_VECTOR], spec.user_vector_dim)
    blocks = [dense, vec, hot]
    if retrieval_score:
        if "retrieval_score" not in frame.columns:
            raise ValueError("the ranker reads the two-tower score: the frame has no retrieval_score column")
        blocks.append(frame[["retrieval_score"]].to_numpy(dtype=float))
    return {
        "sparse": torch.from_numpy(sparse),
        "dense": torch.from_numpy(np.hstack(blocks).astype(np.float32)),
        "history": encode_history(frame, spec),
    }


def sparse_cardinalities(spec: FeatureSpec) -> tuple[int, int, int, int]:
    """Embedding table sizes of the ranker's sparse fields (vocabulary + unknown)."""
    return (len(spec.users) + 1, len(spec.contents) + 1, len(spec.creators) + 1, len(spec.devices) + 1)
