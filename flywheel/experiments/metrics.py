"""Per-unit metrics from events: pure pandas, one row per exposed unit.

A unit (a user) enters the experiment at its first event that carries the experiment's
``context.experiment_id``; its variant is the one that event names. Everything the unit does
from then on counts towards its post-exposure metrics; everything before is its pre-period
(the CUPED covariate). ``day<N>_active`` is 1 when the unit has an event in
``[exposure + N days, exposure + N + 1 days)``, and missing (not 0) for units whose window had
not ended when the data stops, so late entrants do not dilute it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from flywheel.experiments.catalogue import resolve_metric

DAY_MS = 86_400_000
EVENT_COLUMNS = (
    "user_id",
    "session_id",
    "event_type",
    "timestamp_ms",
    "watch_seconds",
    "experiment_id",
    "variant",
    "device_type",
    "content_id",
)
BASE_COLUMNS = ("impressions", "clicks", "watch_hours", "sessions", "active_days")


def events_frame(events: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Flatten decoded event envelopes into the columns the metrics need.

    Args:
        events: Event dicts as the schema defines them (``context`` and ``device`` nested).
            Repeated ``event_id`` values (client retries) are kept once.

    Returns:
        A frame with :data:`EVENT_COLUMNS`.
    """
    rows = []
    seen: set[str] = set()
    for e in events:
        event_id = e.get("event_id")
        if event_id is not None:
            if event_id in seen:  # a client retry: the same event delivered again
                continue
            seen.add(event_id)
        context = e.get("context") or {}
        device = e.get("device") or {}
        rows.append(
            (
                e.get("user_id"),
                e.get("session_id"),
                e.get("event_type"),
                e.get("timestamp_ms"),
                e.get("watch_seconds"),
                context.get("experiment_id"),
                context.get("variant"),
                device.get("type"),
                e.get("content_id"),
            )
        )
    frame = pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
    frame["timestamp_ms"] = frame["timestamp_ms"].astype("int64")
    frame["watch_seconds"] = pd.to_numeric(frame["watch_seconds"], errors="coerce")
    return frame


def _aggregate(events: pd.DataFrame, units: pd.Index) -> pd.DataFrame:
    """The base per-unit columns of ``events``, for every unit of ``units`` (0 when none)."""
    by_user = events.groupby("user_id", sort=False)
    out = pd.DataFrame(index=units)
    out["impressions"] = (events["event_type"] == "impression").groupby(events["user_id"]).sum()
    out["clicks"] = (events["event_type"] == "click").groupby(events["user_id"]).sum()
    out["watch_hours"] = by_user["watch_seconds"].sum(min_count=1) / 3600.0
    out["sessions"] = by_user["session_id"].nunique()
    out["active_days"] = (events["timestamp_ms"] // DAY_MS).groupby(events["user_id"]).nunique()
    return out.fillna(0.0).astype(float)


def unit_metrics(
    events: pd.DataFrame,
    experiment_id: str,
    metrics: Sequence[str],
    *,
    stratify_by: str | None = "device_type",
) -> pd.DataFrame:
    """One row per unit exposed to ``experiment_id``.

    Args:
        events: A frame with :data:`EVENT_COLUMNS` (see :func:`events_frame`).
        experiment_id: The experiment.
        metrics: Metric names of the catalogue; ``day<N>_active`` columns are added for them.
        stratify_by: Event column whose value at the first exposure is the unit's stratum.

    Returns:
        Indexed by unit id: ``variant``, ``exposure_ms``, ``stratum``, ``conflict`` (the unit
        was seen in more than one variant), the base columns (:data:`BASE_COLUMNS`) after
        exposure, the same with a ``pre_`` prefix before exposure, and ``day<N>_active``.
    """
    exposures = events[events["experiment_id"] == experiment_id]
    if exposures.empty:
        return pd.DataFrame(columns=["variant", "exposure_ms", "stratum", "conflict", *BASE_COLUMNS])
    first = exposures.sort_values("timestamp_ms", kind="stable").groupby("user_id").first()
    units = first.index
    out = pd.DataFrame(index=units)
    out.index.name = "unit_id"
    out["variant"] = first["variant"].astype(str)
    out["exposure_ms"] = first["timestamp_ms"].astype("int64")
    if stratify_by and stratify_by in first.columns:
        out["stratum"] = first[stratify_by].fillna("unknown").astype(str)
    else:
        out["stratum"] = "all"
    out["conflict"] = exposures.groupby("user_id")["variant"].nunique() > 1

    mine = events[events["user_id"].isin(units)]
    t0 = mine["user_id"].map(out["exposure_ms"])
    after = mine["timestamp_ms"] >= t0
    post = _aggregate(mine[after], units)
    pre = _aggregate(mine[~after], units).add_prefix("pre_")
    out = out.join(post).join(pre)

    end_ms = int(events["timestamp_ms"].max())
    for name in metrics:
        definition = resolve_metric(name)
        if definition.day is None:
            continue
        lo = t0 + definition.day * DAY_MS
        hit = (mine["timestamp_ms"] >= lo) & (mine["timestamp_ms"] < lo + DAY_MS)
        active = hit.groupby(mine["user_id"]).any().reindex(units, fill_value=False)
        eligible = out["exposure_ms"] + (definition.day + 1) * DAY_MS <= end_ms + 1
        out[name] = np.where(eligible, active.astype(float), np.nan)
    return out
