"""Building the dataflow's settings from Flywheel's configuration (at entry points only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flywheel.config.features import DEFAULT_GENRES, FeaturesConfig
from flywheel.config.models import FlywheelConfig
from flywheel.config.streaming import StreamingConfig
from flywheel.features import formulas as f
from flywheel.stream.features import FeatureContext
from streaming.dataflow import StreamSettings


def streaming_section(config: FlywheelConfig) -> StreamingConfig:
    """The ``streaming`` section (its defaults while the root model does not compose it yet)."""
    section = getattr(config, "streaming", None)
    return section if isinstance(section, StreamingConfig) else StreamingConfig()


def features_section(config: FlywheelConfig) -> FeaturesConfig:
    """The ``features`` section (its defaults when the root model does not compose it)."""
    section = getattr(config, "features", None)
    return section if isinstance(section, FeaturesConfig) else FeaturesConfig()


def feature_context(features: FeaturesConfig, streaming: StreamingConfig) -> FeatureContext:
    """The windows, catalog, users and genre vocabulary the formulas need, as the batch job uses them."""
    from flywheel.features.sources import catalog_lookup, load_catalog, load_users, users_lookup

    return FeatureContext(
        vocab=f.GenreVocabulary(tuple(features.genres or DEFAULT_GENRES)),
        catalog=catalog_lookup(load_catalog(features.catalog_path)),
        users=users_lookup(load_users(features.users_path)),
        short_days=features.short_window_days,
        long_days=features.long_window_days,
        skip_threshold_seconds=features.skip_threshold_seconds,
        allowed_lateness_ms=streaming.allowed_lateness_ms,
    )


def absolute_paths(streaming: StreamingConfig, home: Path) -> StreamingConfig:
    """The section with every path set and absolute: defaults under ``<home>/stream``.

    Absolute because a Feast push changes the working directory for a moment.
    """
    folder = Path(home) / "stream"
    return streaming.model_copy(
        update={
            "recovery_dir": Path(streaming.recovery_dir or folder / "recovery").resolve(),
            "report_path": Path(streaming.report_path or folder / "report.json").resolve(),
            "features_table": Path(streaming.features_table or folder / "features.sqlite").resolve(),
        }
    )


def settings_from_config(config: FlywheelConfig, **options: Any) -> StreamSettings:
    """Dataflow settings from the whole configuration.

    Args:
        config: The Flywheel configuration.
        **options: Further :class:`~streaming.dataflow.StreamSettings` fields (``until_end``,
            ``as_of_end_ms``, ``feature_sinks``, ``streaming`` to override the section).
    """
    streaming = absolute_paths(options.pop("streaming", None) or streaming_section(config), config.home)
    features = features_section(config)
    if features.session_gap_minutes != streaming.session_gap_minutes:
        raise ValueError(
            f"streaming.session_gap_minutes ({streaming.session_gap_minutes:g}) must equal "
            f"features.session_gap_minutes ({features.session_gap_minutes:g}): stream and batch sessions must agree"
        )
    local = config.event_log.local
    config = config.model_copy(
        update={
            "event_log": config.event_log.model_copy(
                update={"local": local.model_copy(update={"path": Path(local.path).resolve()})}
            )
        }
    )
    context = options.pop("context", None) or feature_context(features, streaming)
    return StreamSettings(config=config, streaming=streaming, context=context, **options)
