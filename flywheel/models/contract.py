"""The training-set contract: the columns (and kinds) the models read, checked before training.

A training set is one row per logged impression, built point-in-time by the feature platform
(``flywheel features training-set``): keys, the five labels, the logged position and propensity,
the device and the user, content and cross features. The catalog gives the static content
features (genres, creator, synopsis) that let new items be scored before any interaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from flywheel.config.training import HEAD_NAMES

Kind = Literal["string", "timestamp", "binary", "int", "float", "vector", "string_list"]


class ContractError(ValueError):
    """A frame does not satisfy a contract; the message names the columns at fault."""


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a contract."""

    name: str
    kind: Kind
    description: str


@dataclass(frozen=True, slots=True)
class Contract:
    """A named list of required columns."""

    name: str
    columns: tuple[Column, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """The column names, in order."""
        return tuple(c.name for c in self.columns)

    def missing(self, frame: pd.DataFrame) -> list[str]:
        """Required columns absent from ``frame``."""
        return [c.name for c in self.columns if c.name not in frame.columns]

    def validate(self, frame: pd.DataFrame, *, allow_empty: bool = False) -> None:
        """Check that ``frame`` has every column with a compatible kind.

        Raises:
            ContractError: Columns are missing, have the wrong kind, or the frame is empty.
        """
        missing = self.missing(frame)
        if missing:
            raise ContractError(f"{self.name}: missing column(s): {', '.join(missing)}")
        if not allow_empty and frame.empty:
            raise ContractError(f"{self.name}: the frame has no rows")
        wrong = [
            f"{c.name} (expected {c.kind}, got {frame[c.name].dtype})"
            for c in self.columns
            if not _kind_ok(frame[c.name], c.kind)
        ]
        if wrong:
            raise ContractError(f"{self.name}: wrong column kind(s): {'; '.join(wrong)}")


def _kind_ok(series: pd.Series, kind: Kind) -> bool:
    if kind == "timestamp":
        return bool(pd.api.types.is_datetime64_any_dtype(series))
    if kind in ("binary", "int", "float"):
        return bool(pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series))
    if kind == "string":
        return bool(pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series))
    # vector and string_list: object columns of sequences; check the first non-null value.
    first = next((v for v in series.head(50) if v is not None), None)
    if first is None:
        return series.empty
    return isinstance(first, list | tuple | np.ndarray)


KEYS = (
    Column("user_id", "string", "The user shown the impression."),
    Column("content_id", "string", "The item impressed."),
    Column("event_timestamp", "timestamp", "When the impression was logged (UTC)."),
)
LABELS = tuple(Column(h, "binary", f"Label of the `{h}` head (0/1).") for h in HEAD_NAMES)
LOGGING = (
    Column("position", "int", "1-based position of the item in the logged slate."),
    Column("propensity", "float", "Logged probability that the position was examined."),
    Column("device_type", "string", "Device of the session (tv, mobile, ...)."),
)
USER_DENSE = ("user_total_watch_hours_7d", "user_skip_rate_7d", "user_content_completion_rate_30d")
CONTENT_DENSE = (
    "content_total_plays_7d",
    "content_avg_completion_rate",
    "content_release_recency_days",
    "content_play_to_impression_ratio",
)
CROSS_DENSE = ("user_x_content_genre_overlap",)
USER_VECTOR = "user_genre_affinity_vector"
SOURCES: tuple[str, ...] = ("two_tower", "item_to_item", "popular_now", "new_releases")
"""The candidate sources merged before the ranker (:mod:`flywheel.models.stack`)."""
SOURCE_DENSE: tuple[str, ...] = tuple(f"source_{s}_{f}" for s in SOURCES for f in ("rank", "z", "in"))
"""The ranker's features from the sources, per source: 1 / log2(2 + rank) of the title in the
source's ordering of the whole catalog, its score standardised over the catalog (clipped to
[-5, 10]), and 1 when the source proposed it. Bounded by construction: never rescaled."""

TRAINING_SET = Contract(
    "training set",
    KEYS
    + LABELS
    + LOGGING
    + tuple(Column(n, "float", "User feature.") for n in USER_DENSE)
    + (Column(USER_VECTOR, "vector", "User genre affinity (sums to 1)."),)
    + tuple(Column(n, "float", "Content feature.") for n in CONTENT_DENSE)
    + tuple(Column(n, "float", "Cross feature.") for n in CROSS_DENSE),
)
"""The columns every training window must have."""

CATALOG = Contract(
    "catalog",
    (
        Column("content_id", "string", "Item id."),
        Column("genres", "string_list", "Genres of the item."),
        Column("creator_id", "string", "Creator (studio, artist, host)."),
        Column("synopsis", "string", "Free text describing the item."),
        Column("release_ts", "timestamp", "When the item became available."),
    ),
)
"""The static content features (the cold-start path)."""

FEATURES: tuple[str, ...] = (
    ("user_id", "content_id", "device_type", "creator_id")
    + USER_DENSE
    + (USER_VECTOR,)
    + CONTENT_DENSE
    + CROSS_DENSE
    + ("genres", "synopsis")
)
"""The feature list a model version expects at serving time (logged with each version)."""


def label_columns() -> tuple[str, ...]:
    """The label column names, in head order."""
    return HEAD_NAMES


def require(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """Raise ContractError naming the ``columns`` that ``frame`` lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ContractError(f"{what}: missing column(s): {', '.join(missing)}")


#: Label columns as the feature platform (``flywheel features training-set``) names them.
FEATURE_PLATFORM_LABELS: dict[str, str] = {f"label_{h}": h for h in HEAD_NAMES}


def adapt_feature_platform(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Map a training set written by the feature platform onto this contract.

    * ``label_click`` ... ``label_add_to_list`` become the head names;
    * ``device_type`` (absent there) comes from ``user_device_preference``;
    * imported interactions log no position or propensity: they become 1 (no debiasing
      possible), with a note;
    * 0-based positions (the event schema's) become 1-based.

    Frames already in the contract come back unchanged.

    Returns:
        The adapted frame and notes for the report.
    """
    notes: list[str] = []
    present = {k: v for k, v in FEATURE_PLATFORM_LABELS.items() if k in frame.columns and v not in frame.columns}
    if not present and "device_type" in frame.columns:
        return frame, notes
    out = frame.rename(columns=present)
    if present:
        notes.append(f"renamed feature-platform labels {sorted(present)}")
    if "device_type" not in out.columns and "user_device_preference" in out.columns:
        out["device_type"] = out["user_device_preference"].astype(str)
        notes.append("device_type taken from user_device_preference")
    for column in ("position", "propensity"):
        if column in out.columns and out[column].isna().all() and len(out):
            out[column] = 1
            notes.append(f"{column} not logged (imported interactions?): set to 1, no position debiasing")
    if "position" in out.columns:
        out["position"] = pd.to_numeric(out["position"], errors="coerce")
        if len(out) and out["position"].min() == 0:  # the event schema counts slots from 0
            out["position"] = out["position"] + 1
            notes.append("0-based positions shifted to 1-based")
    return out, notes


def utc_time(text: str) -> pd.Timestamp | None:
    """An ISO time (a window bound) as a UTC timestamp; None when empty; naive times are taken as UTC.

    Raises:
        ValueError: ``text`` is not a time.
    """
    if not text:
        return None
    stamp = pd.Timestamp(text)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
