"""The Feast push sink: feature rows to the push sources of the feature views, online and offline.

Feast keeps the newest row per entity online and appends rows offline, so pushing a row again
(a replay after a crash) leaves the online values unchanged and adds an identical offline row,
which point-in-time joins resolve to the same values.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from flywheel.features import formulas as f
from flywheel.features.store import append_offline
from monitoring.metrics import STREAM_BATCH_SECONDS, STREAM_FEATURES_PUSHED
from streaming.dataflow import CONTENT_VIEW, USER_VIEW

if TYPE_CHECKING:
    from flywheel.config.features import FeaturesConfig

#: Stream view -> (Feast push source, entity column, feature columns the view holds).
PUSH_TARGETS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    USER_VIEW: ("user_features_push", "user_id", tuple(name for name, _ in f.USER_FEATURES)),
    CONTENT_VIEW: ("content_features_push", "content_id", tuple(name for name, _ in f.CONTENT_FEATURES)),
}


def push_frames(items: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The rows of a batch as one DataFrame per push source (newest row per entity)."""
    import pandas as pd

    latest: dict[str, dict[str, dict[str, Any]]] = {}
    for view, row in items:
        target = PUSH_TARGETS.get(view)
        if target is None:
            continue
        source, entity, _ = target
        kept = latest.setdefault(source, {})
        previous = kept.get(row[entity])
        if previous is None or row["event_timestamp"] >= previous["event_timestamp"]:
            kept[row[entity]] = row
    frames = {}
    for view, (source, entity, columns) in PUSH_TARGETS.items():
        rows = latest.get(source)
        if not rows:
            continue
        names = (entity, "event_timestamp", *columns)
        frame = pd.DataFrame([{name: row[name] for name in names} for row in rows.values()])
        frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], unit="ms", utc=True)
        frames[source] = (view, frame)
    return frames


#: Feast view of each push source, and the kinds of its features.
FEAST_VIEWS = {
    "user_features_push": ("user_features", "user_id", f.USER_FEATURES),
    "content_features_push": ("content_features", "content_id", f.CONTENT_FEATURES),
}


class _FeastPartition(StatelessSinkPartition[tuple[str, dict[str, Any]]]):
    def __init__(self, features: FeaturesConfig) -> None:
        from flywheel.features.store import offline_path, open_store

        features = features.model_copy(update={"data_dir": Path(features.data_dir).resolve()})
        self._store = open_store(features)
        self._offline = {source: offline_path(features, view) for source, (view, _, _) in FEAST_VIEWS.items()}

    def _push(self, source: str, frame: Any) -> None:
        """Online through Feast; offline by appending to the view's parquet table.

        Feast 0.67's own offline push rewrites the parquet file with pyarrow's compliant list
        naming (``list<element: ...>``), which its schema reader then rejects on the next push
        (``KeyError: 'list<element: string>'``) for every list feature; so the rows are appended
        here, keeping the ``list<item: ...>`` naming Feast maps to its array types.
        """
        from feast.data_source import PushMode

        self._store.push(source, frame, to=PushMode.ONLINE)
        append_offline(self._offline[source], frame, FEAST_VIEWS[source][1], FEAST_VIEWS[source][2])

    def write_batch(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        import time

        started = time.perf_counter()
        for source, (view, frame) in push_frames(items).items():
            self._push(source, frame)
            STREAM_FEATURES_PUSHED.labels(view=f"feast:{view}").inc(len(frame))
        STREAM_BATCH_SECONDS.labels(step="feast_push").observe(time.perf_counter() - started)


class FeastPushSink(DynamicSink[tuple[str, dict[str, Any]]]):
    """Pushes (view, row) items to Feast (online, and offline when the view's parquet exists).

    The repo must have been applied (``flywheel features apply`` / ``feast apply``).
    """

    def __init__(self, features: FeaturesConfig) -> None:
        self._features = features

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _FeastPartition:
        return _FeastPartition(self._features)
