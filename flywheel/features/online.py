"""The fast online read path of a ranking request: 1 user row and up to hundreds of titles.

Feast stays the source of truth (definitions, materialization, the online store); what changes is
how a request reads it:

* content features are held in memory as a dense matrix, one row per title (row 0 holds the
  defaults of unknown titles), loaded from the online store by :meth:`OnlineFeatureReader.refresh`
  after each materialization and patched by :meth:`OnlineFeatureReader.push_content`;
* the user row is read per request from the online store, through the Feast online store's own
  ``online_read`` (SQLite or Redis);
* the cross features are computed for all titles at once with NumPy (:func:`cross_matrix`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import repeat
from typing import TYPE_CHECKING, Any

import numpy as np

from flywheel.features import formulas as f
from flywheel.features.cross import CROSS_FEATURES, cross_matrix, unit_rows
from flywheel.features.store import CONTENT_VIEW, USER_VIEW, append_offline

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore
    from feast.protos.feast.types.Value_pb2 import Value as ValueProto

#: The numeric content features of the item matrix, in column order.
CONTENT_NUMERIC: tuple[str, ...] = (
    "content_total_plays_7d",
    "content_avg_completion_rate",
    "content_release_recency_days",
    "content_avg_rating",
    "content_play_to_impression_ratio",
)


def value_of(value: ValueProto) -> Any:
    """The Python value of a Feast ``Value`` proto (lists as lists; None when unset)."""
    kind = value.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    raw = getattr(value, kind)
    return list(raw.val) if kind.endswith("_list_val") else raw


def _entity_key(join_key: str, entity_id: str) -> Any:
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    return EntityKey(join_keys=[join_key], entity_values=[Value(string_val=entity_id)])


def _entity_key_factory(join_key: str) -> Any:
    """A fast maker of one kind of entity key (the proto classes resolved once)."""
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    def make(entity_id: str) -> Any:
        return EntityKey(join_keys=[join_key], entity_values=[Value(string_val=entity_id)])

    return make


@dataclass(frozen=True, slots=True)
class RankingFeatures:
    """The features of one ranking request."""

    user: dict[str, Any]
    """The user's feature values (defaults when unknown)."""
    user_known: bool
    item_columns: tuple[str, ...]
    """Names of the columns of ``items``."""
    items: np.ndarray
    """One row per requested title: numeric content features, genre vector, cross features."""
    content_known: np.ndarray
    """Per requested title, False when the store does not know it (its row holds defaults)."""


@dataclass(frozen=True, slots=True)
class ContentMatrix:
    """One immutable load of the content features; swapped whole, so readers never see a mix."""

    ids: tuple[str, ...]
    index: dict[str, int]
    """Row of each title (row 0 holds the defaults of unknown titles)."""
    rows: tuple[dict[str, Any], ...]
    """The feature values of each row."""
    creators: dict[str, int]
    """Code of each creator."""
    base: np.ndarray
    """Numeric content features and genre vector, one row per title."""
    unit: np.ndarray
    """Genre vectors scaled to unit length."""
    creator_codes: np.ndarray
    """Creator code per row (-1 for none)."""


class OnlineFeatureReader:
    """Reads ranking features in well under a millisecond; see the module docstring."""

    def __init__(self, store: FeatureStore, *, vocab: f.GenreVocabulary) -> None:
        self.store = store
        self.vocab = vocab
        self._online = store._get_provider().online_store  # noqa: SLF001 - Feast's own online store
        self._user_view = store.get_feature_view(USER_VIEW)
        self._content_view = store.get_feature_view(CONTENT_VIEW)
        self._user_defaults = f.finalize_user(f.UserState(), f.UserState(), None, 0, vocab)
        self._user_key = _entity_key_factory("user_id")
        self._lock = threading.Lock()
        self._content_defaults = f.finalize_content(f.ContentState(), f.ContentState(), None, 0, vocab)
        self._matrix = self._build([])
        self.refreshed_at: float | None = None
        self.materialized_until: datetime | None = None
        self.item_columns = (
            *CONTENT_NUMERIC,
            *(f"content_genre_vector_{i}" for i in range(vocab.size)),
            *CROSS_FEATURES,
        )

    # -- loading ---------------------------------------------------------------------------

    def _read_rows(
        self, view: Any, join_key: str, ids: Sequence[str], chunk: int = 1000
    ) -> list[dict[str, Any] | None]:
        out: list[dict[str, Any] | None] = []
        for start in range(0, len(ids), chunk):
            keys = [_entity_key(join_key, i) for i in ids[start : start + chunk]]
            for _, values in self._online.online_read(self.store.config, view, keys, None):
                row = {name: value_of(v) for name, v in (values or {}).items()}
                out.append(row if any(v is not None for v in row.values()) else None)
        return out

    def refresh(self, content_ids: Iterable[str]) -> int:
        """(Re)load the content matrix from the online store for ``content_ids``; returns titles found."""
        ids = sorted(set(content_ids))
        rows = self._read_rows(self._content_view, "content_id", ids)
        found = [(i, r) for i, r in zip(ids, rows, strict=True) if r is not None]
        with self._lock:
            self._install(found)
        view = self.store.get_feature_view(CONTENT_VIEW, allow_registry_cache=False)
        self.materialized_until = view.most_recent_end_time
        return len(found)

    def refresh_if_materialized(self, content_ids: Iterable[str]) -> bool:
        """Reload when the content view was materialized since the last load; True when it was."""
        view = self.store.get_feature_view(CONTENT_VIEW, allow_registry_cache=False)
        if view.most_recent_end_time == self.materialized_until:
            return False
        self.refresh(content_ids)
        return True

    def _build(self, found: list[tuple[str, dict[str, Any]]]) -> ContentMatrix:
        defaults = self._content_defaults
        rows = [defaults] + [{**defaults, **{k: v for k, v in r.items() if v is not None}} for _, r in found]
        creators: dict[str, int] = {}
        for row in rows[1:]:
            if row["content_creator_id"]:
                creators.setdefault(row["content_creator_id"], len(creators))
        base = np.array(
            [[float(r[name]) for name in CONTENT_NUMERIC] + list(r["content_genre_vector"]) for r in rows],
            dtype=np.float64,
        )
        ids = tuple(i for i, _ in found)
        return ContentMatrix(
            ids=ids,
            index={cid: n + 1 for n, cid in enumerate(ids)},
            rows=tuple(rows),
            creators=creators,
            base=base,
            unit=unit_rows(base[:, len(CONTENT_NUMERIC) :]),
            creator_codes=np.array([creators.get(r["content_creator_id"], -1) for r in rows], dtype=np.intp),
        )

    def _install(self, found: list[tuple[str, dict[str, Any]]]) -> None:
        matrix = self._build(found)
        self._matrix = matrix  # one reference swap: a request sees the old or the new load, whole
        self.refreshed_at = time.time()

    def update_content(self, rows: Iterable[dict[str, Any]]) -> None:
        """Patch the matrix with content rows (``content_id`` and the view's features), e.g. pushed ones."""
        with self._lock:  # writers take turns; readers never wait
            matrix = self._matrix
            current = {cid: matrix.rows[n + 1] for n, cid in enumerate(matrix.ids)}
            for row in rows:
                current[row["content_id"]] = {
                    k: v for k, v in row.items() if k not in ("content_id", "event_timestamp")
                }
            self._install(sorted(current.items()))

    def push_content(self, frame: pd.DataFrame) -> None:
        """Push content rows to Feast online, append them to the view's offline table (the point-in-time
        joins read them back) and patch the in-memory matrix.

        Offline rows go through :func:`flywheel.features.store.append_offline`, as the streaming
        sink's do: Feast's own offline push breaks the table's list columns for the next push.
        """
        from pathlib import Path

        from feast.data_source import PushMode

        frame = frame.reset_index(drop=True)
        self.store.push("content_features_push", frame, to=PushMode.ONLINE)
        source = Path(getattr(self._content_view.batch_source, "path", ""))
        path = source if source.is_absolute() else Path(self.store.config.repo_path or ".") / source
        append_offline(path, frame, "content_id", f.CONTENT_FEATURES)
        self.update_content(frame.to_dict("records"))

    @property
    def content_count(self) -> int:
        """Titles held in memory."""
        return len(self._matrix.ids)

    # -- the request path --------------------------------------------------------------------

    def read_user(self, user_id: str) -> tuple[dict[str, Any], bool]:
        """The user's features from the online store (defaults and False when unknown)."""
        ((_, values),) = self._online.online_read(self.store.config, self._user_view, [self._user_key(user_id)], None)
        if not values:
            return dict(self._user_defaults), False
        row = {name: value_of(v) for name, v in values.items()}
        if all(v is None for v in row.values()):
            return dict(self._user_defaults), False
        return {**self._user_defaults, **{k: v for k, v in row.items() if v is not None}}, True

    def read(self, user_id: str, content_ids: Sequence[str]) -> RankingFeatures:
        """The features of one ranking request: the user row, one item row per title, cross features."""
        user, user_known = self.read_user(user_id)
        matrix = self._matrix
        base, unit, codes = matrix.base, matrix.unit, matrix.creator_codes
        rows = np.fromiter(map(matrix.index.get, content_ids, repeat(0)), dtype=np.intp, count=len(content_ids))
        mask = np.zeros(len(matrix.creators) + 1, dtype=bool)
        for creator in user["user_creators_watched_30d"]:
            code = matrix.creators.get(creator)
            if code is not None:
                mask[code] = True
        items = np.empty((len(rows), base.shape[1] + len(CROSS_FEATURES)))
        np.take(base, rows, axis=0, out=items[:, : base.shape[1]])
        items[:, base.shape[1] :] = cross_matrix(
            user["user_genre_affinity_vector"],
            user["user_genre_watch_hours_7d"],
            mask,
            unit[rows],
            items[:, len(CONTENT_NUMERIC) : base.shape[1]],
            codes[rows],
        )
        return RankingFeatures(user, user_known, self.item_columns, items, rows > 0)
