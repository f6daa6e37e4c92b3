"""Where the recommend path reads its features: the user row and the candidates' content features.

Two sources share the :class:`FeatureSource` interface:

* :class:`OnlineFeatures` reads through the feature platform's fast read path
  (:class:`flywheel.features.online.OnlineFeatureReader`: Feast's online store, SQLite or Redis);
* :class:`StaticFeatures` holds tables in memory (tests, benchmarks, a bundle served without a
  feature store): unknown users and titles get the defaults.

A source may raise (the store is down): the recommender then degrades to the defaults.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from flywheel.models.contract import CONTENT_DENSE, USER_DENSE

if TYPE_CHECKING:
    from flywheel.features.online import OnlineFeatureReader


@dataclass(frozen=True, slots=True)
class UserFeatures:
    """The user-side features a request is ranked with."""

    dense: Mapping[str, float]
    """The contract's user dense features (USER_DENSE)."""
    genre_affinity: tuple[float, ...]
    """The user's genre affinity vector."""
    device_type: str = "unknown"
    """The user's device (the store's device preference)."""
    known: bool = False
    """False when the store does not know the user (a cold start)."""

    def as_log(self) -> dict[str, float | str]:
        """The features as the prediction log records them (name -> number or string)."""
        out: dict[str, float | str] = {name: float(self.dense.get(name, 0.0)) for name in USER_DENSE}
        out["device_type"] = self.device_type
        out["user_known"] = float(self.known)
        return out


def default_user(vector_dim: int) -> UserFeatures:
    """The features of a user nobody knows: zeros, a flat genre affinity."""
    flat = tuple([1.0 / vector_dim] * vector_dim) if vector_dim else ()
    return UserFeatures({name: 0.0 for name in USER_DENSE}, flat, "unknown", False)


class FeatureSource(Protocol):
    """Reads the features of one request."""

    def user(self, user_id: str) -> UserFeatures:
        """The user's features (defaults with ``known=False`` when unknown)."""

    def content(self, content_ids: Sequence[str]) -> np.ndarray:
        """[n, len(CONTENT_DENSE)] content features of the titles, in CONTENT_DENSE order (NaN when unknown)."""


@dataclass
class StaticFeatures:
    """Feature tables held in memory."""

    users: dict[str, UserFeatures] = field(default_factory=dict)
    content_rows: dict[str, int] = field(default_factory=dict)
    content_matrix: np.ndarray = field(default_factory=lambda: np.full((1, len(CONTENT_DENSE)), np.nan))
    """Row 0 (NaN) stands for unknown titles."""
    vector_dim: int = 0

    @classmethod
    def from_tables(
        cls, users: Mapping[str, UserFeatures], content: Mapping[str, Sequence[float]], *, vector_dim: int
    ) -> StaticFeatures:
        """Tables from {user_id: features} and {content_id: values in CONTENT_DENSE order}."""
        ids = list(content)
        matrix = np.full((len(ids) + 1, len(CONTENT_DENSE)), np.nan)
        if ids:
            matrix[1:] = np.asarray([content[i] for i in ids], dtype=float)
        return cls(dict(users), {cid: n + 1 for n, cid in enumerate(ids)}, matrix, vector_dim)

    def user(self, user_id: str) -> UserFeatures:
        """The user's features (defaults when unknown)."""
        return self.users.get(user_id) or default_user(self.vector_dim)

    def content(self, content_ids: Sequence[str]) -> np.ndarray:
        """Content features of the titles (NaN when unknown)."""
        rows = np.fromiter((self.content_rows.get(c, 0) for c in content_ids), dtype=np.intp, count=len(content_ids))
        return self.content_matrix[rows]


class OnlineFeatures:
    """The feature platform's online store, through its fast read path."""

    def __init__(self, reader: OnlineFeatureReader, *, vector_dim: int) -> None:
        self.reader = reader
        self.vector_dim = vector_dim
        columns = reader.item_columns
        self._content_columns = [columns.index(name) for name in CONTENT_DENSE]

    def user(self, user_id: str) -> UserFeatures:
        """The user's row from the online store (defaults when unknown)."""
        row, known = self.reader.read_user(user_id)
        if not known:
            return default_user(self.vector_dim)
        return user_from_row(row, self.vector_dim)

    def content(self, content_ids: Sequence[str]) -> np.ndarray:
        """The titles' content features from the reader's in-memory matrix."""
        features = self.reader.read("", content_ids)
        values = features.items[:, self._content_columns].astype(float)
        values[~np.asarray(features.content_known, dtype=bool)] = np.nan
        return values


def user_from_row(row: Mapping[str, Any], vector_dim: int) -> UserFeatures:
    """Features from a store row (feature name -> value), missing values as 0."""
    vector = [float(v) for v in (row.get("user_genre_affinity_vector") or [])][:vector_dim]
    vector += [0.0] * (vector_dim - len(vector))
    dense = {name: float(row.get(name) or 0.0) for name in USER_DENSE}
    return UserFeatures(dense, tuple(vector), str(row.get("user_device_preference") or "unknown"), True)
