"""The configuration models. Each section is a strict pydantic model with a docstring per field."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import Field

from flywheel.config.base import Section
from flywheel.config.experiments import ExperimentsConfig
from flywheel.config.features import FeaturesConfig
from flywheel.config.monitoring import MonitoringConfig
from flywheel.config.rollout import RolloutConfig
from flywheel.config.serving import ServingConfig
from flywheel.config.simulator import SimulatorConfig
from flywheel.config.streaming import StreamingConfig
from flywheel.config.training import TrainingConfig


class TopicsConfig(Section):
    """Topic names, the same locally and on Kafka."""

    events: str = "events"
    """Every client interaction, keyed by user_id."""
    dlq: str = "events.dlq"
    """Events that failed validation, with the reason and the raw payload."""
    late: str = "events.late"
    """Events that arrived after the allowed lateness."""
    predictions: str = "predictions"
    """The serving log: one record per request and variant."""


class LocalLogConfig(Section):
    """The embedded event log: partitioned append-only files on disk."""

    path: Path = Path(".flywheel/log")
    """Folder of the log; a topic is a sub-folder, a partition an append-only file."""
    fsync: bool = False
    """fsync after every batch (durable against power loss, slower)."""


class KafkaConfig(Section):
    """Kafka (or any Kafka-protocol broker) as the event log."""

    bootstrap_servers: str = "127.0.0.1:9092"
    """Comma-separated host:port list of the brokers."""
    replication_factor: int = Field(default=1, ge=1)
    """Replication factor of the topics Flywheel creates."""
    client_id: str = "flywheel"
    """Client id reported to the brokers."""


class EventLogConfig(Section):
    """Where events are written and read."""

    backend: Literal["local", "kafka"] = "local"
    """`local` (files on disk, the embedded default) or `kafka`."""
    partitions: int = Field(default=8, ge=1, le=1024)
    """Partitions per topic; partition = hash(user_id) mod partitions."""
    topics: TopicsConfig = TopicsConfig()
    """Topic names."""
    local: LocalLogConfig = LocalLogConfig()
    """Settings of the local log."""
    kafka: KafkaConfig = KafkaConfig()
    """Settings of the Kafka log."""


class ValidationConfig(Section):
    """Rules every event is checked against on the way in."""

    max_clock_skew_seconds: float = Field(default=300.0, gt=0)
    """Events stamped further than this in the future of the receiver's clock are rejected."""
    max_watch_seconds: float = Field(default=6 * 3600.0, gt=0)
    """Upper bound of a single playback report."""
    earliest_timestamp: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    """Events (and imported rows) stamped before this are implausible and rejected. The default
    (the Unix epoch) accepts historical data of any era; a live-only deployment may raise it."""

    @property
    def earliest_ms(self) -> int:
        """:attr:`earliest_timestamp` in ms since the epoch (a time without an offset is UTC)."""
        moment = self.earliest_timestamp
        return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)


class FlywheelConfig(Section):
    """The root of the Flywheel configuration."""

    home: Path = Path(".flywheel")
    """Folder for local state (log, stores, registry, reports)."""
    event_log: EventLogConfig = EventLogConfig()
    """The event backbone."""
    validation: ValidationConfig = ValidationConfig()
    """Event validation rules."""
    simulator: SimulatorConfig = SimulatorConfig()
    """The platform simulator."""
    features: FeaturesConfig = FeaturesConfig()
    """The feature platform: Feast repo, stores, batch job, serving read path."""
    streaming: StreamingConfig = StreamingConfig()
    """The streaming features dataflow (Bytewax): lateness, dedup, recovery, metrics."""
    training: TrainingConfig = TrainingConfig()
    """Models, training, evaluation gates and the MLflow registry."""
    experiments: ExperimentsConfig = ExperimentsConfig()
    """The experimentation platform."""
    rollout: RolloutConfig = RolloutConfig()
    """Canary rollouts: the schedule, the automatic analysis and its guardrails."""
    monitoring: MonitoringConfig = MonitoringConfig()
    """Drift, data-quality and skew jobs and the retrain trigger."""
    serving: ServingConfig = ServingConfig()
    """The model server (KServe + Triton), its router and prediction log."""
