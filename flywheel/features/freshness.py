"""Freshness of each feature view: the age of its newest data, so monitoring can alert on staleness."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from feast import FeatureStore

    from flywheel.config.features import FeaturesConfig


@dataclass(frozen=True, slots=True)
class ViewFreshness:
    """How fresh one feature view is."""

    view: str
    newest: datetime | None
    """Timestamp of the view's newest row in the offline store (None: no data)."""
    materialized_until: datetime | None
    """End of the view's last materialization into the online store (None: never)."""
    age_seconds: float | None
    """``now - newest`` (None: no data)."""
    stale: bool
    """True when there is no data or it is older than the threshold."""


def assess(
    newest: Mapping[str, datetime | None],
    materialized: Mapping[str, datetime | None],
    now: datetime,
    stale_after: timedelta,
) -> list[ViewFreshness]:
    """Freshness of every view from its newest timestamps (pure).

    Args:
        newest: Newest offline row per view.
        materialized: End of the last materialization per view.
        now: The clock.
        stale_after: Age above which a view is stale.
    """
    out = []
    for view in sorted(newest):
        stamp = newest[view]
        age = None if stamp is None else (now - stamp).total_seconds()
        out.append(
            ViewFreshness(
                view=view,
                newest=stamp,
                materialized_until=materialized.get(view),
                age_seconds=age,
                stale=age is None or age > stale_after.total_seconds(),
            )
        )
    return out


def newest_offline_row(path: Path) -> datetime | None:
    """The largest ``event_timestamp`` of a parquet batch source (None when missing or empty)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not Path(path).exists():
        return None
    column = pq.read_table(path, columns=["event_timestamp"])["event_timestamp"]
    if len(column) == 0:
        return None
    value = pc.max(column).as_py()
    return value


def view_freshness(store: FeatureStore, cfg: FeaturesConfig, now: datetime) -> list[ViewFreshness]:
    """Freshness of every feature view of the store, from its batch source and the registry."""
    newest: dict[str, datetime | None] = {}
    materialized: dict[str, datetime | None] = {}
    for view in store.list_feature_views(allow_cache=False):
        source = view.batch_source
        path = Path(getattr(source, "path", ""))
        if not path.is_absolute():
            path = Path(store.config.repo_path or ".") / path
        newest[view.name] = newest_offline_row(path)
        materialized[view.name] = view.most_recent_end_time
    return assess(newest, materialized, now, timedelta(hours=cfg.stale_after_hours))
