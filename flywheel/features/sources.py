"""The inputs of the feature jobs: validated events from the log, the catalog and the users.

Events are read through the event-log interface (local files or Kafka), validated with the
platform's :class:`~flywheel.events.validation.EventValidator` (rejected ones belong to the DLQ and
are only counted here), deduplicated on ``event_id`` and flattened to the columns the Spark job
reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.features import formulas as f
from flywheel.features.spark_job import EVENT_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

    from flywheel.events.log import EventLog
    from flywheel.events.validation import EventValidator


class SourceError(ValueError):
    """An input of a feature job is missing or empty; the message names it."""


@dataclass(slots=True)
class EventScan:
    """What reading the log found."""

    events: list[dict[str, Any]] = field(default_factory=list)
    """The valid events (empty when they went to ``on_batch``)."""
    valid: int = 0
    read: int = 0
    invalid: int = 0
    duplicates: int = 0
    rejections: dict[str, int] = field(default_factory=dict)


def scan_events(
    log: EventLog,
    topic: str,
    validator: EventValidator,
    *,
    now_ms: int | None = None,
    batch: int = 5000,
    on_batch: Callable[[list[dict[str, Any]]], None] | None = None,
) -> EventScan:
    """Read every record of ``topic``, keep the valid events once each.

    Args:
        log: The event log.
        topic: The topic to read from its start to its current end.
        validator: Decides which events are valid.
        now_ms: The validator's clock (default: now).
        batch: Records per poll.
        on_batch: Receives the new valid events of each poll, which are then not kept in
            ``EventScan.events`` (bounded memory); None keeps them all there.

    Raises:
        SourceError: The topic does not exist or holds no record.
    """
    try:
        ends = log.end_offsets(topic)
    except Exception as exc:  # noqa: BLE001 - the log names what is missing
        raise SourceError(f"event topic {topic!r} cannot be read: {exc}") from exc
    if not sum(ends.values()):
        raise SourceError(f"event topic {topic!r} is empty: nothing to compute features from")
    clock = int(time.time() * 1000) if now_ms is None else now_ms
    scan = EventScan()
    seen: set[str] = set()
    # a consumer from offset 0 of every partition up to the ends seen now (never committed), so
    # the same code reads the local log and Kafka
    consumer = log.consumer(topic, group="flywheel-features-backfill", partitions=sorted(ends))
    try:
        for partition in ends:
            consumer.seek(partition, 0)
        remaining = {p for p, end in ends.items() if end > 0}
        idle = 0
        while remaining and idle < 3:  # three empty polls: the rest is unreadable (a damaged tail)
            records = consumer.poll(batch, timeout_s=1.0)
            idle = 0 if records else idle + 1
            kept: list[dict[str, Any]] = []
            for record in records:
                if record.offset >= ends[record.partition]:
                    continue
                if record.offset + 1 >= ends[record.partition]:
                    remaining.discard(record.partition)
                scan.read += 1
                result = validator.validate_bytes(record.value, now_ms=clock)
                if not result.ok or result.event is None:
                    scan.invalid += 1
                    for rejection in result.rejections:
                        scan.rejections[rejection.code] = scan.rejections.get(rejection.code, 0) + 1
                    continue
                event = result.event
                if event["event_id"] in seen:
                    scan.duplicates += 1
                    continue
                seen.add(event["event_id"])
                kept.append(event)
            scan.valid += len(kept)
            if on_batch is None:
                scan.events.extend(kept)
            elif kept:
                on_batch(kept)
    finally:
        consumer.close()
    return scan


def flatten_events(events: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The columns of :data:`~flywheel.features.spark_job.EVENT_COLUMNS`, plus the impression context."""
    import pandas as pd

    rows = [
        {
            "event_id": e["event_id"],
            "event_type": e["event_type"],
            "timestamp_ms": int(e["timestamp_ms"]),
            "user_id": e["user_id"],
            "content_id": e.get("content_id"),
            "device_type": e["device"]["type"],
            "watch_seconds": e.get("watch_seconds"),
            "position_seconds": e.get("position_seconds"),
            "rating": e.get("rating"),
            "duration_seconds": e.get("duration_seconds"),
            "position": (e.get("context") or {}).get("position"),
            "propensity": (e.get("context") or {}).get("propensity"),
        }
        for e in events
    ]
    frame = pd.DataFrame(rows, columns=[*EVENT_COLUMNS, "duration_seconds", "position", "propensity"])
    for name in ("watch_seconds", "position_seconds", "rating", "duration_seconds", "propensity"):
        frame[name] = frame[name].astype("float64")
    frame["position"] = frame["position"].astype("Int64")
    frame["timestamp_ms"] = frame["timestamp_ms"].astype("int64")
    return frame


def _to_ms(series: pd.Series) -> pd.Series:
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(series):
        stamps = pd.to_datetime(series, utc=True)
        return ((stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)).astype("Int64")
    return pd.to_numeric(series).astype("Int64")


def load_catalog(path: Path | None) -> pd.DataFrame:
    """The catalog as ``content_id, genres, creator_id, duration_seconds, release_ts_ms``.

    Raises:
        SourceError: ``path`` is given but missing or empty.
    """
    import pandas as pd

    columns = ["content_id", "genres", "creator_id", "duration_seconds", "release_ts_ms"]
    if path is None:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns}).astype(
            {"duration_seconds": "float64", "release_ts_ms": "Int64"}
        )
    raw = _read_table(path, "catalog")
    out = pd.DataFrame({"content_id": raw["content_id"].astype(str)})
    out["genres"] = [list(g) if g is not None else [] for g in raw.get("genres", pd.Series([None] * len(raw)))]
    out["creator_id"] = raw["creator_id"].astype(str) if "creator_id" in raw else ""
    out["duration_seconds"] = raw["duration_seconds"].astype("float64") if "duration_seconds" in raw else float("nan")
    out["release_ts_ms"] = (
        _to_ms(raw["release_ts"]) if "release_ts" in raw else pd.Series([pd.NA] * len(raw), dtype="Int64")
    )
    return out


def load_users(path: Path | None) -> pd.DataFrame:
    """The users as ``user_id, tier, signup_ts_ms``.

    Raises:
        SourceError: ``path`` is given but missing or empty.
    """
    import pandas as pd

    if path is None:
        return pd.DataFrame(
            {
                "user_id": pd.Series(dtype="object"),
                "tier": pd.Series(dtype="object"),
                "signup_ts_ms": pd.Series(dtype="Int64"),
            }
        )
    raw = _read_table(path, "users")
    out = pd.DataFrame({"user_id": raw["user_id"].astype(str)})
    out["tier"] = raw["tier"].astype(str) if "tier" in raw else f.UNKNOWN
    out["signup_ts_ms"] = (
        _to_ms(raw["signup_ts"]) if "signup_ts" in raw else pd.Series([pd.NA] * len(raw), dtype="Int64")
    )
    return out


def _read_table(path: Path, name: str) -> pd.DataFrame:
    import pandas as pd

    if not Path(path).exists():
        raise SourceError(f"the {name} table {path} does not exist")
    frame = pd.read_parquet(path)
    if frame.empty:
        raise SourceError(f"the {name} table {path} is empty")
    return frame


def catalog_lookup(catalog: pd.DataFrame) -> dict[str, f.ContentMeta]:
    """Catalog rows as :class:`~flywheel.features.formulas.ContentMeta` by content id."""
    import pandas as pd

    out = {}
    for row in catalog.itertuples(index=False):
        release = row.release_ts_ms
        duration = row.duration_seconds
        out[row.content_id] = f.ContentMeta(
            content_id=row.content_id,
            genres=tuple(row.genres),
            creator_id=row.creator_id or "",
            duration_seconds=None if pd.isna(duration) else float(duration),
            release_ts_ms=None if pd.isna(release) else int(release),
        )
    return out


def users_lookup(users: pd.DataFrame) -> dict[str, f.UserProfile]:
    """User rows as :class:`~flywheel.features.formulas.UserProfile` by user id."""
    import pandas as pd

    out = {}
    for row in users.itertuples(index=False):
        signup = row.signup_ts_ms
        out[row.user_id] = f.UserProfile(
            user_id=row.user_id, tier=row.tier, signup_ts_ms=None if pd.isna(signup) else int(signup)
        )
    return out


def table_schemas() -> dict[str, Any]:
    """Arrow schemas of the staged inputs: ``events``, ``catalog``, ``users``."""
    import pyarrow as pa

    return {
        "events": pa.schema(
            [
                ("event_id", pa.string()),
                ("event_type", pa.string()),
                ("timestamp_ms", pa.int64()),
                ("user_id", pa.string()),
                ("content_id", pa.string()),
                ("device_type", pa.string()),
                ("watch_seconds", pa.float64()),
                ("position_seconds", pa.float64()),
                ("rating", pa.float64()),
                ("duration_seconds", pa.float64()),
                ("position", pa.int64()),
                ("propensity", pa.float64()),
            ]
        ),
        "catalog": pa.schema(
            [
                ("content_id", pa.string()),
                ("genres", pa.list_(pa.string())),
                ("creator_id", pa.string()),
                ("duration_seconds", pa.float64()),
                ("release_ts_ms", pa.int64()),
            ]
        ),
        "users": pa.schema([("user_id", pa.string()), ("tier", pa.string()), ("signup_ts_ms", pa.int64())]),
    }


def write_table(name: str, frame: pd.DataFrame, folder: Path) -> Path:
    """Write one staged input (``events``, ``catalog`` or ``users``) as ``<folder>/<name>.parquet``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.parquet"
    pq.write_table(pa.Table.from_pandas(frame, schema=table_schemas()[name], preserve_index=False), path)
    return path


class StagedEventsWriter:
    """Appends validated events to ``<folder>/events.parquet`` batch by batch (bounded memory)."""

    def __init__(self, folder: Path) -> None:
        import pyarrow.parquet as pq

        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "events.parquet"
        self._schema = table_schemas()["events"]
        self._writer = pq.ParquetWriter(self.path, self._schema)
        self.rows = 0
        self.first_ms: int | None = None
        self.last_ms: int | None = None

    def write(self, events: list[dict[str, Any]]) -> None:
        """Flatten and append a batch of validated events."""
        import pyarrow as pa

        if not events:
            return
        frame = flatten_events(events)
        self._writer.write_table(pa.Table.from_pandas(frame, schema=self._schema, preserve_index=False))
        self.rows += len(frame)
        low, high = int(frame["timestamp_ms"].min()), int(frame["timestamp_ms"].max())
        self.first_ms = low if self.first_ms is None else min(self.first_ms, low)
        self.last_ms = high if self.last_ms is None else max(self.last_ms, high)

    def close(self) -> None:
        """Finish the file."""
        self._writer.close()


def write_spark_inputs(
    events: pd.DataFrame, catalog: pd.DataFrame, users: pd.DataFrame, folder: Path
) -> tuple[Path, Path, Path]:
    """Write the three inputs of the Spark job (and of the training sets) as parquet files."""
    return (
        write_table("events", events, folder),
        write_table("catalog", catalog, folder),
        write_table("users", users, folder),
    )
