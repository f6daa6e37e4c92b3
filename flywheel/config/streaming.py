"""Configuration of the streaming features dataflow (owned by flywheel.stream and streaming/)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from flywheel.config.base import Section


class StreamingConfig(Section):
    """The Bytewax dataflow from the `events` topic to the DLQ, the late topic and Feast."""

    session_gap_minutes: float = Field(default=30.0, gt=0)
    """Inactivity (in event time) that closes a user's session."""
    allowed_lateness_minutes: float = Field(default=10.0, ge=0)
    """How far behind a user's newest event an event may be and still update the features
    (and the right session); older events go to the late topic."""
    dedup_horizon_minutes: float = Field(default=60.0, gt=0)
    """Event-time horizon within which a repeated event_id is always caught as a duplicate."""
    batch_size: int = Field(default=1000, ge=1, le=100_000)
    """Records read from a partition per poll (the engine's throughput depends on it)."""
    recovery: bool = True
    """Snapshot offsets and state together (Bytewax recovery), so a restart resumes exactly."""
    recovery_dir: Path | None = None
    """Folder of Bytewax's recovery database (default: `<home>/stream/recovery`)."""
    snapshot_interval_seconds: float = Field(default=5.0, gt=0)
    """Length of an epoch: offsets and state are snapshotted at the end of each."""
    emit_interval_seconds: float = Field(default=5.0, gt=0)
    """How often (processing time) the features of the entities that changed are pushed."""
    workers: int = Field(default=1, ge=1, le=64)
    """Worker threads per process."""
    content_shards: int = Field(default=64, ge=1, le=4096)
    """Keys over which the per-title state is spread (the unit of parallelism of that step).
    Bytewax places a shard on a worker by a hash of its key, so many more shards than workers
    keep them evenly loaded; each source batch sends at most one item per shard."""
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """Port of the Prometheus endpoint while the dataflow runs (null: no endpoint)."""
    report_path: Path | None = None
    """Where the reconciliation counts of a run are written (default: `<home>/stream/report.json`)."""
    features_table: Path | None = None
    """Latest feature values per entity, kept next to the Feast push, for inspection and tests
    (default: `<home>/stream/features.sqlite`)."""
    push_to_feast: bool = True
    """Push the features to Feast (online and offline) when a feature repo is configured."""

    @model_validator(mode="after")
    def _horizon_covers_lateness(self) -> StreamingConfig:
        if self.dedup_horizon_minutes < self.allowed_lateness_minutes:
            raise ValueError(
                "dedup_horizon_minutes must be at least allowed_lateness_minutes, "
                "or a late duplicate could be counted twice"
            )
        return self

    @property
    def session_gap_ms(self) -> int:
        """The session gap in milliseconds."""
        return round(self.session_gap_minutes * 60_000)

    @property
    def allowed_lateness_ms(self) -> int:
        """The allowed lateness in milliseconds."""
        return round(self.allowed_lateness_minutes * 60_000)

    @property
    def dedup_horizon_ms(self) -> int:
        """The dedup horizon in milliseconds."""
        return round(self.dedup_horizon_minutes * 60_000)
