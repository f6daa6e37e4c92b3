"""Stream features equal the Spark batch features as of the same time, on the same events."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
from bytewax.testing import run_main

from flywheel.config.features import FeaturesConfig
from flywheel.config.streaming import StreamingConfig
from flywheel.events.local_log import LocalEventLog
from flywheel.events.validation import EventValidator
from flywheel.features import formulas as f
from flywheel.features.aggregates import WindowSpec
from flywheel.features.sources import flatten_events, load_catalog, load_users, write_spark_inputs
from flywheel.features.spark_job import JobInputs, run_job, spark_session
from streaming.dataflow import CONTENT_VIEW, USER_VIEW, build_flow
from streaming.settings import feature_context, settings_from_config
from streaming.sinks import read_feature_table
from tests.integration.streaming.helpers import simulate_day, write_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    session = spark_session("local[2]", shuffle_partitions=2, app_name="flywheel-stream-parity")
    yield session
    session.stop()


def _accepted_events(log: LocalEventLog) -> list[dict[str, Any]]:
    """The events the stream folds: valid (clock = the log's timestamp), first of each id, not too late."""
    late_coords: set[tuple[int, int]] = set()
    if "events.late" in log.topics():
        for p in range(log.topic_partitions("events.late")):
            for rec in log.read("events.late", p, 0, 1_000_000):
                letter = orjson.loads(rec.value)
                late_coords.add((letter["partition"], letter["offset"]))
    validator = EventValidator()
    seen: set[str] = set()
    out = []
    for p in range(log.topic_partitions("events")):
        for rec in log.read("events", p, 0, 10_000_000):
            result = validator.validate_bytes(rec.value, now_ms=rec.timestamp_ms)
            if not result.ok or result.event is None:
                continue
            event = result.event
            if event["event_id"] in seen:
                continue
            seen.add(event["event_id"])
            if (p, rec.offset) not in late_coords:
                out.append(event)
    return out


def _same(a: Any, b: Any) -> bool:
    if hasattr(a, "tolist"):
        a = a.tolist()
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def test_stream_features_equal_spark_features(spark: Any, tmp_path: Path) -> None:
    config_path = write_config(tmp_path, users=200)
    config, _ = simulate_day(config_path, ground_truth=True)
    gt = Path(config.simulator.ground_truth_dir)
    features = FeaturesConfig(catalog_path=gt / "catalog.parquet", users_path=gt / "users.parquet")
    streaming = StreamingConfig(
        recovery=False, report_path=tmp_path / "report.json", features_table=tmp_path / "features.sqlite"
    )
    log = LocalEventLog(config.event_log.local.path)
    # first pass without a stamp, to learn the cutoff (just after the newest accepted event)
    probe = settings_from_config(config, streaming=streaming, context=feature_context(features, streaming))
    run_main(build_flow(probe))
    accepted = _accepted_events(log)
    report = orjson.loads((tmp_path / "report.json").read_bytes())
    assert report["balanced"] and report["processed"] == len(accepted) and report["late"] > 0
    cutoff = max(e["timestamp_ms"] for e in accepted) + 1

    # the stream's final rows as of the cutoff
    for topic in ("events.dlq", "events.late"):
        for child in (Path(config.event_log.local.path) / topic).glob("p*"):
            child.unlink()
    (tmp_path / "features.sqlite").unlink()
    settings = settings_from_config(
        config, streaming=streaming, context=feature_context(features, streaming), as_of_end_ms=cutoff
    )
    run_main(build_flow(settings))
    table = read_feature_table(tmp_path / "features.sqlite")
    stream_users = {e: r for (v, e), r in table.items() if v == USER_VIEW}
    stream_contents = {e: r for (v, e), r in table.items() if v == CONTENT_VIEW}
    assert all(r["event_timestamp"] == cutoff for r in table.values())

    # the batch job on the same events, as of the same time
    vocab = f.GenreVocabulary(features.genres)
    spec = WindowSpec(
        short_days=features.short_window_days,
        long_days=features.long_window_days,
        session_gap_ms=streaming.session_gap_ms,
        skip_threshold_seconds=features.skip_threshold_seconds,
    )
    inputs = write_spark_inputs(
        flatten_events(accepted), load_catalog(features.catalog_path), load_users(features.users_path), tmp_path / "in"
    )
    run_job(spark, JobInputs(*inputs), tmp_path / "out", vocab, spec, cutoff)
    compared = 0
    for view, key, names, stream_rows in (
        ("user_features", "user_id", f.USER_FEATURES, stream_users),
        ("content_features", "content_id", f.CONTENT_FEATURES, stream_contents),
    ):
        frame = pd.read_parquet(tmp_path / "out" / f"{view}.parquet")
        stamps = frame["event_timestamp"] - pd.Timestamp(0, tz="UTC")
        frame["event_timestamp"] = stamps // pd.Timedelta(milliseconds=1)
        batch = {r[key]: r for r in frame[frame["event_timestamp"] == cutoff].to_dict("records")}
        assert set(stream_rows) <= set(batch)
        assert len(stream_rows) > 50
        for entity, row in stream_rows.items():
            for name, _ in names:
                expected = batch[entity][name]
                assert _same(expected, row[name]), f"{view} {entity} {name}: batch {expected!r} != stream {row[name]!r}"
                compared += 1
    assert compared > 1000
