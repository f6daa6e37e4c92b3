"""Training-set preparation: contract check, time-based split, point-in-time serving frames."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from flywheel.config.features import DEFAULT_GENRES
from flywheel.models.contract import CATALOG, CONTENT_DENSE, TRAINING_SET, USER_DENSE, USER_VECTOR
from flywheel.models.encoding import add_history, genre_multi_hot

USER_COLUMNS = ("user_id", "device_type", *USER_DENSE, USER_VECTOR, "history")


@dataclass(frozen=True)
class TimeSplit:
    """A window split at ``cutoff``: training rows before it, holdout rows at or after it."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    cutoff: pd.Timestamp


def time_split(frame: pd.DataFrame, holdout_fraction: float) -> TimeSplit:
    """Split by time: the latest ``holdout_fraction`` of the window's time span is the holdout.

    Raises:
        ValueError: Either side would be empty.
    """
    ts = frame["event_timestamp"]
    start, end = ts.min(), ts.max()
    cutoff = start + (end - start) * (1 - holdout_fraction)
    train, holdout = frame[ts < cutoff], frame[ts >= cutoff]
    if train.empty or holdout.empty:
        raise ValueError(f"time split at {cutoff} leaves {len(train)} training and {len(holdout)} holdout rows")
    return TimeSplit(train.reset_index(drop=True), holdout.reset_index(drop=True), cutoff)


def prepare_window(frame: pd.DataFrame, catalog: pd.DataFrame, *, history_length: int) -> pd.DataFrame:
    """Check the contracts and add the point-in-time watch history to every row.

    Raises:
        ContractError: A column is missing or has the wrong kind; names the columns.
    """
    TRAINING_SET.validate(frame)
    CATALOG.validate(catalog)
    frame = frame.sort_values("event_timestamp", kind="stable").reset_index(drop=True)
    return add_history(frame, length=history_length)


def query_rows(holdout: pd.DataFrame) -> pd.DataFrame:
    """One retrieval query per holdout user: the user's first holdout impression (its features)."""
    first = holdout.sort_values("event_timestamp", kind="stable").groupby("user_id", sort=True).head(1)
    return first.reset_index(drop=True)


def content_snapshot(history: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """The latest logged content features of each item strictly before ``as_of``."""
    before = history[history["event_timestamp"] < as_of]
    latest = before.sort_values("event_timestamp", kind="stable").groupby("content_id").tail(1)
    return latest.set_index("content_id")[list(CONTENT_DENSE)]


def genre_overlap(user_vectors: np.ndarray, genres: pd.Series) -> np.ndarray:
    """Cosine of each user genre vector (DEFAULT_GENRES + other) with the item's genres."""
    hot = genre_multi_hot(genres, DEFAULT_GENRES)
    hot = np.hstack([hot, np.zeros((len(hot), max(0, user_vectors.shape[1] - hot.shape[1])))])
    hot = hot[:, : user_vectors.shape[1]]
    num = (user_vectors * hot).sum(1)
    return num / (np.linalg.norm(user_vectors, axis=1) * np.linalg.norm(hot, axis=1) + 1e-9)


def pair_frame(
    queries: pd.DataFrame,
    candidates: np.ndarray,
    catalog: pd.DataFrame,
    snapshot: pd.DataFrame,
) -> pd.DataFrame:
    """Ranker rows for each query x candidate: user features from the query, content features
    from the snapshot (zeros for items never logged), cross features computed.

    Args:
        queries: Q rows with the user columns.
        candidates: [Q, C] content ids.
        catalog: The catalog (genres, release_ts).
        snapshot: Content features indexed by content_id (see :func:`content_snapshot`).
    """
    q, c = candidates.shape
    return pair_rows(queries, np.repeat(np.arange(q), c), candidates.reshape(-1), catalog, snapshot)


def pair_rows(
    queries: pd.DataFrame,
    query_index: np.ndarray,
    content_ids: np.ndarray,
    catalog: pd.DataFrame,
    snapshot: pd.DataFrame,
) -> pd.DataFrame:
    """Ranker rows for (query, candidate) pairs given flat: ``queries`` row ``query_index[n]``
    with item ``content_ids[n]`` (candidate lists of different lengths); see :func:`pair_frame`."""
    query_index = np.asarray(query_index, dtype=np.int64)
    user = queries.iloc[query_index][[col for col in USER_COLUMNS if col in queries]]
    user = user.reset_index(drop=True)
    ids = np.asarray(content_ids).astype(object)
    user["content_id"] = ids
    content = snapshot.reindex(ids)
    for col in CONTENT_DENSE:
        user[col] = content[col].to_numpy(dtype=float)
    user[list(CONTENT_DENSE)] = user[list(CONTENT_DENSE)].fillna(0.0)
    cat = catalog.set_index("content_id").reindex(ids)
    when = queries["event_timestamp"].to_numpy()[query_index]
    released = pd.to_datetime(cat["release_ts"], utc=True).to_numpy()
    user["content_release_recency_days"] = (
        (pd.to_datetime(when, utc=True) - pd.to_datetime(released, utc=True)) / pd.Timedelta(days=1)
    ).to_numpy(dtype=float)
    vectors = np.stack([np.asarray(v, dtype=float) for v in user[USER_VECTOR]])
    genres = cat["genres"].apply(lambda g: list(g) if isinstance(g, list | tuple | np.ndarray) else [])
    user["user_x_content_genre_overlap"] = genre_overlap(vectors, genres.reset_index(drop=True))
    user["position"] = 1
    return user
