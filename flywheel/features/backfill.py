"""The backfill: event log → validated events → Spark feature job → offline store (parquet)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from flywheel.features import formulas as f
from flywheel.features.aggregates import WindowSpec
from flywheel.features.sources import (
    SourceError,
    StagedEventsWriter,
    load_catalog,
    load_users,
    scan_events,
    write_table,
)
from flywheel.features.spark_job import JobInputs, run_job, spark_session
from flywheel.features.store import OFFLINE_FOLDER

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from flywheel.config.features import FeaturesConfig
    from flywheel.events.log import EventLog
    from flywheel.events.validation import EventValidator

STAGING_FOLDER = "staging"


@dataclass(slots=True)
class BackfillSummary:
    """What a backfill read and wrote."""

    records_read: int = 0
    invalid_events: int = 0
    """Events failing validation (they belong to the DLQ; excluded from features)."""
    duplicate_events: int = 0
    valid_events: int = 0
    rejections: dict[str, int] = field(default_factory=dict)
    catalog_rows: int = 0
    user_rows: int = 0
    rows_written: dict[str, int] = field(default_factory=dict)
    first_event_ms: int = 0
    cutoff_ms: int = 0
    seconds: float = 0.0


def window_spec(cfg: FeaturesConfig) -> WindowSpec:
    """The window settings of the configuration."""
    return WindowSpec(
        short_days=cfg.short_window_days,
        long_days=cfg.long_window_days,
        session_gap_ms=int(cfg.session_gap_minutes * 60_000),
        skip_threshold_seconds=cfg.skip_threshold_seconds,
    )


def vocabulary(cfg: FeaturesConfig) -> f.GenreVocabulary:
    """The genre vocabulary of the configuration."""
    return f.GenreVocabulary(tuple(cfg.genres))


def staging_folder(cfg: FeaturesConfig) -> Path:
    """Where the backfill keeps the validated events, the catalog and the users it read."""
    return Path(cfg.data_dir) / STAGING_FOLDER


def run_backfill(
    cfg: FeaturesConfig,
    log: EventLog,
    topic: str,
    validator: EventValidator,
    *,
    spark: SparkSession | None = None,
    cutoff_ms: int | None = None,
    now_ms: int | None = None,
) -> BackfillSummary:
    """Compute the feature tables from the whole event topic and write the offline store.

    The valid events are staged to parquet batch by batch (memory stays bounded by the batch and
    the set of event ids seen), then the Spark job reads them with the catalog and the users.

    Args:
        cfg: The feature settings.
        log: The event log.
        topic: The events topic.
        validator: Validates every event; rejected ones are counted, not used.
        spark: A running session; when None, the active one, else one started (and stopped) from ``cfg``.
        cutoff_ms: Ignore events at or after this time; default: just after the newest event.
        now_ms: The clock of the validator (default: now).

    Raises:
        SourceError: The topic, the catalog or the users table is missing or empty, or no event is valid.
    """
    started = time.perf_counter()
    catalog = load_catalog(cfg.catalog_path)
    users = load_users(cfg.users_path)
    folder = staging_folder(cfg)
    writer = StagedEventsWriter(folder)
    try:
        scan = scan_events(log, topic, validator, now_ms=now_ms, on_batch=writer.write)
    finally:
        writer.close()
    summary = BackfillSummary(
        records_read=scan.read,
        invalid_events=scan.invalid,
        duplicate_events=scan.duplicates,
        valid_events=scan.valid,
        rejections=dict(sorted(scan.rejections.items())),
        catalog_rows=len(catalog),
        user_rows=len(users),
    )
    if not scan.valid or writer.first_ms is None or writer.last_ms is None:
        raise SourceError(f"event topic {topic!r} holds {scan.read} records but none is a valid event")
    summary.first_event_ms = writer.first_ms
    summary.cutoff_ms = writer.last_ms + 1 if cutoff_ms is None else cutoff_ms
    paths = (writer.path, write_table("catalog", catalog, folder), write_table("users", users, folder))
    from pyspark.sql import SparkSession

    own = spark is None and SparkSession.getActiveSession() is None  # never stop a caller's session
    session = spark or spark_session(cfg.spark_master, shuffle_partitions=cfg.shuffle_partitions)
    try:
        summary.rows_written = run_job(
            session,
            JobInputs(*paths),
            Path(cfg.data_dir) / OFFLINE_FOLDER,
            vocabulary(cfg),
            window_spec(cfg),
            summary.cutoff_ms,
        )
    finally:
        if own:
            session.stop()
    summary.seconds = time.perf_counter() - started
    return summary
