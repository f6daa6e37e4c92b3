"""Point-in-time training sets: labelled impressions joined with the features as of their time.

Each impression is one example. Its labels look ahead (up to ``label_window_ms`` after it, same
user and title): click, watch > 50 % of the title, complete, like, add to list. Its features look
back: Feast's ``get_historical_features`` picks, per entity, the newest feature row stamped at or
before the impression, and every row stamped ``T`` only summarizes events before ``T``.
The logged position and propensity are kept for debiasing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from flywheel.features import formulas as f
from flywheel.features.cross import CROSS_FEATURES, cross_features
from flywheel.features.store import offline_paths

if TYPE_CHECKING:
    from feast import FeatureStore

LABELS: tuple[str, ...] = ("label_click", "label_watch_50", "label_complete", "label_like", "label_add_to_list")
_LABEL_EVENTS = {
    "label_click": {"click"},
    "label_complete": {f.PLAY_COMPLETE},
    "label_like": {"like"},
    "label_add_to_list": {"add_to_list"},
}


def label_impressions(
    events: pd.DataFrame,
    catalog_durations: dict[str, float],
    label_window_ms: int,
    *,
    example_event: str = "impression",
) -> pd.DataFrame:
    """One labelled example per impression.

    Args:
        events: Flattened valid events (see :func:`flywheel.features.sources.flatten_events`).
        catalog_durations: Title lengths in seconds (the events' ``duration_seconds`` is the fallback).
        label_window_ms: How long after the impression a response is credited to it.
        example_event: The event type that makes an example: ``impression`` (logged traffic), or
            ``playback.started`` for imported interactions, which log no impressions (every
            example is then a click, and position and propensity are missing).

    Returns:
        ``example_id, user_id, content_id, timestamp_ms, position, propensity`` and the labels (0/1),
        plus ``watch_fraction``.
    """
    imps = events.loc[(events["event_type"] == example_event) & events["content_id"].notna()]
    examples = pd.DataFrame(
        {
            "example_id": imps["event_id"].to_numpy(),
            "user_id": imps["user_id"].to_numpy(),
            "content_id": imps["content_id"].to_numpy(),
            "timestamp_ms": imps["timestamp_ms"].to_numpy(dtype=np.int64),
            "position": imps["position"].to_numpy(),
            "propensity": imps["propensity"].to_numpy(dtype=np.float64),
        }
    )
    kinds = set().union(*_LABEL_EVENTS.values()) | f.WATCH_EVENTS
    if example_event != "impression":  # an imported play and its like share the play's timestamp
        events = events.assign(timestamp_ms=events["timestamp_ms"] + (events["event_type"] == "like"))
    responses = events.loc[
        events["event_type"].isin(kinds),
        ["user_id", "content_id", "event_type", "timestamp_ms", "watch_seconds", "duration_seconds"],
    ]
    pairs = examples[["example_id", "user_id", "content_id", "timestamp_ms"]].merge(
        responses.rename(columns={"timestamp_ms": "response_ms"}), on=["user_id", "content_id"], how="inner"
    )
    pairs = pairs.loc[
        (pairs["response_ms"] > pairs["timestamp_ms"])
        & (pairs["response_ms"] <= pairs["timestamp_ms"] + label_window_ms)
    ]
    for label, kinds_of in _LABEL_EVENTS.items():
        hit = pairs.loc[pairs["event_type"].isin(kinds_of), "example_id"].unique()
        examples[label] = examples["example_id"].isin(hit).astype(np.int8)
    if example_event != "impression":
        examples["label_click"] = np.int8(1)
    watched = (
        pairs.loc[pairs["event_type"].isin(f.WATCH_EVENTS)]
        .groupby("example_id")
        .agg(watch=("watch_seconds", "sum"), event_duration=("duration_seconds", "max"))
    )
    examples = examples.merge(watched, left_on="example_id", right_index=True, how="left")
    duration = examples["content_id"].map(catalog_durations).astype("float64").fillna(examples["event_duration"])
    fraction = (examples["watch"].fillna(0.0) / duration).where(duration > 0, 0.0).fillna(0.0)
    examples["watch_fraction"] = fraction
    examples["label_watch_50"] = (fraction > 0.5).astype(np.int8)
    return examples.drop(columns=["watch", "event_duration"])[
        ["example_id", "user_id", "content_id", "timestamp_ms", "position", "propensity", *LABELS, "watch_fraction"]
    ]


def default_values(vocab: f.GenreVocabulary) -> dict[str, Any]:
    """Feature values of an entity the store does not know (the finalized empty state)."""
    return {
        **f.finalize_user(f.UserState(), f.UserState(), None, 0, vocab),
        **f.finalize_content(f.ContentState(), f.ContentState(), None, 0, vocab),
    }


def fill_unknown(frame: pd.DataFrame, vocab: f.GenreVocabulary) -> pd.DataFrame:
    """Replace the features of unknown entities with defaults and flag them (``*_known`` = 0)."""
    out = frame.copy()
    out["user_known"] = out["user_subscription_tier"].notna().astype(np.int8)
    out["content_known"] = out["content_total_plays_7d"].notna().astype(np.int8)
    defaults = default_values(vocab)
    defaults["user_days_since_signup"] = -1.0
    defaults["content_release_recency_days"] = -1.0
    for name, value in defaults.items():
        if name not in out:
            continue
        missing = out[name].isna()
        if missing.any():
            if isinstance(value, list):
                out.loc[missing, name] = pd.Series(
                    [list(value)] * int(missing.sum()), index=out.index[missing], dtype=object
                )
            else:
                out.loc[missing, name] = value
        if isinstance(value, list):
            out[name] = [list(v) for v in out[name]]
    out["content_total_plays_7d"] = out["content_total_plays_7d"].astype(np.int64)
    return out


def add_cross_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Append the cross features computed from each row's user and content features."""
    rows = frame.to_dict("records")
    cross = [cross_features(r, r) for r in rows]
    out = frame.copy()
    for name in CROSS_FEATURES:
        out[name] = [c[name] for c in cross]
    return out


def build_training_set(
    store: FeatureStore, examples: pd.DataFrame, vocab: f.GenreVocabulary, *, service: str = "training"
) -> pd.DataFrame:
    """Join labelled examples with their features as of each example's time.

    Args:
        store: The Feast store (repo applied, offline store written).
        examples: Output of :func:`label_impressions`.
        vocab: The genre vocabulary (for the defaults of unknown entities).
        service: The feature service to read.

    Returns:
        One row per example: ids, ``event_timestamp``, position, propensity, labels, features,
        cross features, ``user_known`` and ``content_known``.
    """
    entity_df = examples.copy()
    entity_df["event_timestamp"] = pd.to_datetime(entity_df["timestamp_ms"], unit="ms", utc=True)
    with offline_paths(store):
        joined = store.get_historical_features(
            entity_df=entity_df, features=store.get_feature_service(service), full_feature_names=False
        ).to_df()
    joined = joined.sort_values(["timestamp_ms", "example_id"], kind="stable").reset_index(drop=True)
    return add_cross_features(fill_unknown(joined, vocab))
