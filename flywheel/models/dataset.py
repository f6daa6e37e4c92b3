"""Training-set preparation: contract check, time-based split, point-in-time serving frames."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from flywheel.config.features import DEFAULT_GENRES
from flywheel.config.recommender import EvaluationConfig
from flywheel.models.contract import CATALOG, CONTENT_DENSE, TRAINING_SET, USER_DENSE, USER_VECTOR
from flywheel.models.encoding import add_history, genre_multi_hot

USER_COLUMNS = ("user_id", "device_type", *USER_DENSE, USER_VECTOR, "history")
INTEREST_LABELS: tuple[str, ...] = ("click", "watch_50", "complete", "like", "add_to_list")
"""Labels that each signal interest in a title: a play or click, a watch past half, a completion, a
like (an imported rating at or above the import's like threshold writes one), an add to list."""


class SplitError(ValueError):
    """A window cannot be split for evaluation as configured; the message says why and what to change."""


def logs_impressions(frame: pd.DataFrame) -> bool:
    """True when the window logs impressions (some example was shown and not clicked); an imported
    window has one example per interaction, every one a click."""
    return bool(len(frame)) and bool((frame["click"] <= 0).any())


def relevance_label(frame: pd.DataFrame, config: EvaluationConfig) -> str:
    """The relevance rule in force for ``frame``: ``any``, ``like`` or ``watch_50`` (``auto`` resolved)."""
    if config.relevance != "auto":
        return config.relevance
    return "watch_50" if logs_impressions(frame) and bool((frame["watch_50"] > 0).any()) else "any"


def is_relevant(frame: pd.DataFrame, relevance: str) -> np.ndarray:
    """Boolean mask of the rows whose item is relevant under ``relevance`` (``any``, ``like``, ``watch_50``)."""
    if relevance == "any":
        return (frame[list(INTEREST_LABELS)].to_numpy(dtype=float) > 0).any(axis=1)
    return frame[relevance].to_numpy(dtype=float) > 0


def per_user_split(frame: pd.DataFrame, holdout: int) -> TimeSplit:
    """Each user's last ``holdout`` interactions (rows with an interest label) and every row from
    the first of them on are the holdout; users with fewer than ``2 x holdout`` interactions stay
    in training. ``cutoff`` is the earliest held-out time.

    Raises:
        SplitError: No user has enough interactions.
    """
    frame = frame.sort_values("event_timestamp", kind="stable").reset_index(drop=True)
    interest = frame[(frame[list(INTEREST_LABELS)].to_numpy(dtype=float) > 0).any(axis=1)]
    counts = interest.groupby("user_id")["event_timestamp"].size()
    eligible = counts[counts >= 2 * holdout].index
    if len(eligible) == 0:
        raise SplitError(
            f"per-user split: no user has the {2 * holdout} interactions needed to hold out {holdout} "
            f"(most has {int(counts.max()) if len(counts) else 0}); lower evaluation.per_user_holdout"
        )
    tail = interest[interest["user_id"].isin(eligible)].groupby("user_id").tail(holdout)
    start = tail.groupby("user_id")["event_timestamp"].min()
    first = frame["user_id"].map(start)
    held = first.notna().to_numpy() & (frame["event_timestamp"] >= first).to_numpy()
    return TimeSplit(frame[~held].reset_index(drop=True), frame[held].reset_index(drop=True), pd.Timestamp(start.min()))


def split_window(frame: pd.DataFrame, holdout_fraction: float, config: EvaluationConfig) -> TimeSplit:
    """Split ``frame`` as ``config.split`` says and check the holdout can be scored.

    Raises:
        SplitError: A side is empty, or fewer than ``config.min_holdout_users`` users have a
            relevant held-out item (the message gives the numbers instead of NaN metrics later).
    """
    if config.split == "per_user":
        split = per_user_split(frame, config.per_user_holdout)
    else:
        try:
            split = time_split(frame, holdout_fraction)
        except ValueError as exc:
            raise SplitError(str(exc)) from exc
    relevance = relevance_label(frame, config)
    users = split.holdout.loc[is_relevant(split.holdout, relevance), "user_id"].nunique()
    if users < config.min_holdout_users:
        raise SplitError(
            f"the {config.split} split leaves {users} user(s) with a relevant held-out item (relevance "
            f"{relevance!r}) out of {split.holdout['user_id'].nunique()} in the holdout; evaluation needs "
            f"{config.min_holdout_users} (evaluation.min_holdout_users): use a longer window, "
            "evaluation.split per_user, or a broader evaluation.relevance"
        )
    return split


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
    return add_history(frame, length=history_length, labels=history_labels(frame))


def history_labels(frame: pd.DataFrame) -> tuple[str, ...]:
    """The labels that put a title in a user's history: every interest signal of an imported
    window (each row is a play, a like or a rating); on logged traffic a click answers where a
    title was shown more than what the user likes, so there the signals after it count (a watch
    past half, a completion, a like, an add to list)."""
    return INTEREST_LABELS if not logs_impressions(frame) else tuple(x for x in INTEREST_LABELS if x != "click")


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
    return genre_cosine(user_vectors, genre_multi_hot(genres, DEFAULT_GENRES))


def genre_cosine_side(hot: np.ndarray, length: int) -> np.ndarray:
    """The items' multi-hot genres padded with zeros or cut to ``length`` (float64), as
    :func:`genre_cosine` reads them."""
    return np.hstack([hot, np.zeros((len(hot), max(0, length - hot.shape[1])))])[:, :length]


def genre_cosine(user_vectors: np.ndarray, hot: np.ndarray) -> np.ndarray:
    """Cosine of each user genre vector with the item's multi-hot genres (DEFAULT_GENRES order),
    the genres padded or cut to the vectors' length (:func:`genre_overlap` of encoded genres)."""
    hot = genre_cosine_side(hot, user_vectors.shape[1])
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
