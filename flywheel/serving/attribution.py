"""Attribution: which served answer each piece of feedback belongs to.

The prediction log (one record per request and variant, :mod:`flywheel.serving.prediction_log`)
is read into a frame (:func:`prediction_frame`); feedback events are attributed to the request
that served the title (:func:`attribute`): an impression to the latest prediction that served
its title to its user within the attribution window (the contract's join), a click or playback
to the request of the impression it follows in the same client session. :func:`unit_frame`
turns the attributed feedback into per-unit metrics (a unit is a user in a variant) in the shape
the experiments analysis reads.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

from flywheel.serving.prediction_log import PredictionRecord

PREDICTION_COLUMNS = (
    "request_id",
    "timestamp_ms",
    "user_id",
    "model_version",
    "variant",
    "rollout_id",
    "items",
    "latency_ms",
    "error",
)
FEEDBACK_TYPES = ("impression", "click", "playback.stopped", "playback.completed")


def prediction_frame(records: Iterable[PredictionRecord | bytes]) -> pd.DataFrame:
    """Prediction records (or their JSON) as a frame of :data:`PREDICTION_COLUMNS`.

    JSON is parsed by :meth:`PredictionRecord.from_json`; a value that is not a prediction record
    is skipped (one bad line must not stop the analysis).
    """
    rows = []
    for raw in records:
        if isinstance(raw, bytes | bytearray):
            try:
                rec = PredictionRecord.from_json(raw)
            except (ValueError, TypeError):
                continue
        else:
            rec = raw
        latency = rec.latency_ms
        rows.append(
            (
                str(rec.request_id),
                int(rec.timestamp_ms),
                str(rec.user_id),
                str(rec.model_version),
                str(rec.variant),
                None if rec.rollout_id is None else str(rec.rollout_id),
                [str(i) for i in rec.items or ()],
                float(latency) if isinstance(latency, int | float) else math.nan,
                None if rec.error is None else str(rec.error),
            )
        )
    frame = pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS))
    frame["timestamp_ms"] = frame["timestamp_ms"].astype("int64")
    frame["latency_ms"] = frame["latency_ms"].astype(float)
    return frame


def attribute(predictions: pd.DataFrame, events: pd.DataFrame, window_ms: int) -> pd.DataFrame:
    """Attribute feedback events to the prediction that served the title.

    An impression counts for the latest prediction that served its title to its user within
    ``window_ms`` before it (the contract's join on user and title). A click or playback counts
    for the request of the latest impression of the same title in the same client session
    before it, so a playback that ends after the user asked again is not credited to the later
    answer; without such an impression it falls back to the same join as impressions.

    Args:
        predictions: A :func:`prediction_frame` (shadow records already left out).
        events: Events with ``user_id``, ``session_id``, ``content_id``, ``event_type``,
            ``timestamp_ms`` and ``watch_seconds`` (:func:`flywheel.experiments.metrics.events_frame`).
        window_ms: How long after a prediction (exclusive) its feedback still counts.

    Returns:
        One row per attributed event: ``event_type``, ``timestamp_ms``, ``watch_seconds``,
        ``user_id``, ``content_id``, and the prediction's ``request_id``, ``variant``,
        ``prediction_ms``.
    """
    columns = ["event_type", "timestamp_ms", "watch_seconds", "user_id", "session_id", "content_id"]
    served_columns = ["request_id", "variant", "prediction_ms"]
    out_columns = [c for c in columns if c != "session_id"] + served_columns
    served = predictions[predictions["error"].isna()][["request_id", "timestamp_ms", "user_id", "variant", "items"]]
    served = served.explode("items").dropna(subset=["items"])
    served = served.rename(columns={"items": "content_id", "timestamp_ms": "prediction_ms"})
    feedback = events[events["event_type"].isin(FEEDBACK_TYPES) & events["content_id"].notna()][columns]
    if served.empty or feedback.empty:
        return pd.DataFrame(columns=out_columns)
    served = served.astype({"prediction_ms": "int64", "user_id": str, "content_id": str})
    feedback = feedback.astype({"timestamp_ms": "int64", "user_id": str, "content_id": str})
    feedback["session_id"] = feedback["session_id"].fillna("").astype(str)
    tolerance = max(0, window_ms - 1)

    def latest_before(left: pd.DataFrame, right: pd.DataFrame, on: str, by: list[str]) -> pd.DataFrame:
        return pd.merge_asof(
            left.sort_values("timestamp_ms", kind="stable"),
            right.sort_values(on, kind="stable"),
            left_on="timestamp_ms",
            right_on=on,
            by=by,
            direction="backward",
            tolerance=tolerance,
        )

    is_impression = feedback["event_type"] == "impression"
    impressions = latest_before(feedback[is_impression], served, "prediction_ms", ["user_id", "content_id"])
    impressions = impressions.dropna(subset=["request_id"])
    seen = impressions[["user_id", "session_id", "content_id", "timestamp_ms", *served_columns]].rename(
        columns={"timestamp_ms": "impression_ms"}
    )
    rest = latest_before(feedback[~is_impression], seen, "impression_ms", ["user_id", "session_id", "content_id"])
    orphan = rest["request_id"].isna()
    fallback = latest_before(rest.loc[orphan, columns], served, "prediction_ms", ["user_id", "content_id"])
    joined = pd.concat([impressions, rest[~orphan], fallback], ignore_index=True)
    return joined.dropna(subset=["request_id"])[out_columns].reset_index(drop=True)


def unit_frame(predictions: pd.DataFrame, attributed: pd.DataFrame) -> pd.DataFrame:
    """Per-unit metrics (a unit = a user in a variant) in the shape the experiments analysis reads.

    Every unit that was served counts, with zeros when no feedback came back.
    """
    served = predictions[predictions["error"].isna()]
    unit = served["user_id"] + "|" + served["variant"]
    first = (
        served.assign(unit=unit).groupby("unit").agg(variant=("variant", "first"), exposure_ms=("timestamp_ms", "min"))
    )
    a_unit = attributed["user_id"] + "|" + attributed["variant"]
    kind = attributed["event_type"]
    ends = kind.isin(("playback.stopped", "playback.completed"))
    out = first.copy()
    out.index.name = "unit_id"
    out["stratum"] = "all"
    out["conflict"] = False
    out["impressions"] = (kind == "impression").groupby(a_unit).sum().reindex(out.index, fill_value=0).astype(float)
    out["clicks"] = (kind == "click").groupby(a_unit).sum().reindex(out.index, fill_value=0).astype(float)
    watch = pd.to_numeric(attributed["watch_seconds"], errors="coerce").where(ends, 0.0).fillna(0.0)
    out["watch_hours"] = (watch.groupby(a_unit).sum() / 3600.0).reindex(out.index, fill_value=0.0)
    for name in ("impressions", "clicks", "watch_hours"):
        out[f"pre_{name}"] = 0.0
    return out
