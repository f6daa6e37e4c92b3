"""Backfill → Feast apply → point-in-time training set (no leakage) → materialize, on SQLite."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flywheel.events.validation import EventValidator
from flywheel.features import formulas as f
from flywheel.features.aggregates import content_feature_rows, user_feature_rows
from flywheel.features.backfill import run_backfill, staging_folder, vocabulary, window_spec
from flywheel.features.sources import SourceError
from flywheel.features.store import apply_repo, materialize, open_store
from flywheel.features.training_set import LABELS, build_training_set, label_impressions
from tests.integration.features.pipeline import features_config, many_events, write_log
from tests.unit.features.factory import CATALOG, MIN, T0, USERS, event

pytestmark = pytest.mark.integration
NOW_MS = T0 + 60 * f.DAY_MS


@pytest.fixture(scope="module")
def built(spark, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The pipeline run once: events (plus invalid ones) → backfill → apply → training set."""
    tmp = tmp_path_factory.mktemp("feast")
    events = many_events()
    # a future bomb: right after u000001's first impression, far more watching than ever before
    first = min(e["timestamp_ms"] for e in events if e["event_type"] == "impression" and e["user_id"] == "u000001")
    events += [
        event("playback.started", first + MIN, content="c000002"),
        event("playback.stopped", first + 2 * MIN, content="c000002", watch=20_000.0, position_s=20_000.0),
    ]
    invalid = [b"{not json", b'{"schema_version": 2, "event_type": "click"}']
    log = write_log(tmp / "log", events, invalid)
    cfg = features_config(tmp)
    summary = run_backfill(cfg, log, "events", EventValidator(), spark=spark, now_ms=NOW_MS)
    store = open_store(cfg)
    apply_repo(store, cfg.repo_path)
    staged = pd.read_parquet(staging_folder(cfg) / "events.parquet")
    durations = {k: m.duration_seconds for k, m in CATALOG.items()}
    examples = label_impressions(staged, durations, int(cfg.label_window_minutes * 60_000))
    training = build_training_set(store, examples, vocabulary(cfg))
    return {"cfg": cfg, "events": events, "summary": summary, "store": store, "training": training, "bomb_ms": first}


def test_backfill_counts_invalid_events_and_writes_both_tables(built: dict[str, Any]) -> None:
    summary = built["summary"]
    assert summary.invalid_events == 2
    assert summary.valid_events == len(built["events"])
    assert summary.rejections == {"malformed_json": 1, "missing_field": 6}
    assert summary.rows_written["user_features"] > 0 and summary.rows_written["content_features"] > 0


def _newest_at_or_before(rows: list[dict[str, Any]], key: str, entity: str, limit_ms: int) -> dict[str, Any] | None:
    candidates = [r for r in rows if r[key] == entity and r["event_timestamp"] <= limit_ms]
    return max(candidates, key=lambda r: r["event_timestamp"]) if candidates else None


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, list | tuple) or hasattr(a, "tolist"):
        a, b = list(a), list(b)
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_no_feature_computed_from_events_after_the_example_reaches_it(built: dict[str, Any]) -> None:
    """Each example's features equal features computed from only the events before its time."""
    cfg, events, training = built["cfg"], built["events"], built["training"]
    vocab, spec = vocabulary(cfg), window_spec(cfg)
    assert len(training) > 50
    assert set(LABELS) <= set(training.columns) and {"position", "propensity"} <= set(training.columns)
    bomb_day = f.bucket_of(built["bomb_ms"])
    seen_before, seen_after = False, False
    for example in training.to_dict("records"):
        t = int(example["timestamp_ms"])
        past = [e for e in events if e["timestamp_ms"] < t]  # nothing at or after the example
        day_start = f.bucket_of(t) * f.DAY_MS
        user_rows = user_feature_rows(past, CATALOG, USERS, vocab, spec, cutoff_ms=t)
        content_rows = content_feature_rows(past, CATALOG, vocab, spec, cutoff_ms=t)
        user = _newest_at_or_before(user_rows, "user_id", example["user_id"], day_start)
        content = _newest_at_or_before(content_rows, "content_id", example["content_id"], day_start)
        assert example["user_known"] == int(user is not None)
        assert example["content_known"] == int(content is not None)
        for expected in (user, content):
            for name, value in (expected or {}).items():
                if name not in ("user_id", "content_id", "event_timestamp"):
                    assert _equal(example[name], value), (example["example_id"], name, example[name], value)
        if example["user_id"] == "u000001" and f.bucket_of(t) == bomb_day:
            assert example["user_total_watch_hours_7d"] == 0.0  # the same-day bomb stays hidden
            seen_before = True
        if example["user_id"] == "u000001" and f.bucket_of(t) == bomb_day + 1:
            assert example["user_total_watch_hours_7d"] > 20_000 / 3600  # and shows the next day
            seen_after = True
    assert seen_before and seen_after


def test_labels_look_ahead_within_the_window_only(built: dict[str, Any]) -> None:
    training = built["training"]
    at = T0 + 20 * 3_600_000 + MIN
    first = training.loc[training["user_id"].eq("u000001") & training["timestamp_ms"].eq(at)].iloc[0]
    # the scenario's first impression: a click 1 min later and a completed 3600 s drama watched 2820 s
    assert (first["label_click"], first["label_complete"], first["label_watch_50"]) == (1, 1, 1)
    assert first["watch_fraction"] == pytest.approx(2820 / 3600)
    assert (first["position"], first["propensity"]) == (0, 0.5)


def test_unknown_titles_get_defaults_with_a_flag(built: dict[str, Any]) -> None:
    unknown = built["training"].loc[built["training"]["content_id"].eq("c000777")]
    assert len(unknown) > 0
    early = unknown.loc[unknown["content_known"].eq(0)]  # before its first day with events
    assert len(early) > 0
    assert (early["content_total_plays_7d"] == 0).all()
    assert early["content_genre_vector"].map(list).map(sum).eq(0).all()
    assert (early["content_release_recency_days"] == -1.0).all()
    assert (unknown.loc[unknown["content_known"].eq(1), "content_total_plays_7d"] > 0).any()
    assert (unknown["user_x_content_genre_overlap"] == 0.0).all()


def test_materialize_loads_the_newest_rows_online(built: dict[str, Any]) -> None:
    store = built["store"]
    start = datetime.fromtimestamp(T0 / 1000, UTC) - timedelta(days=1)
    materialize(store, start, datetime.fromtimestamp(NOW_MS / 1000, UTC))
    online = store.get_online_features(
        features=["user_features:user_subscription_tier", "user_features:user_total_watch_hours_7d"],
        entity_rows=[{"user_id": "u000001"}, {"user_id": "u404"}],
    ).to_dict()
    assert online["user_subscription_tier"] == ["premium", None]
    assert online["user_total_watch_hours_7d"][0] is not None


def test_backfill_names_a_missing_or_empty_source(tmp_path: Path, spark) -> None:
    from flywheel.events.local_log import LocalEventLog

    cfg = features_config(tmp_path)
    with pytest.raises(SourceError, match="'events'"):
        run_backfill(cfg, LocalEventLog(tmp_path / "nolog"), "events", EventValidator(), spark=spark)
    log = write_log(tmp_path / "log", [event("click", T0)])
    missing = features_config(tmp_path, catalog_path=tmp_path / "nope.parquet")
    with pytest.raises(SourceError, match="nope.parquet"):
        run_backfill(missing, log, "events", EventValidator(), spark=spark, now_ms=NOW_MS)
    pd.DataFrame({"user_id": pd.Series(dtype=str)}).to_parquet(tmp_path / "empty.parquet")
    empty = features_config(tmp_path, users_path=tmp_path / "empty.parquet")
    with pytest.raises(SourceError, match="users table .*empty.parquet is empty"):
        run_backfill(empty, log, "events", EventValidator(), spark=spark, now_ms=NOW_MS)


def test_pipeline_window_keeps_only_examples_inside_its_bounds(built: dict[str, Any], tmp_path: Path) -> None:
    from types import SimpleNamespace

    from flywheel.models.steps import feature_platform_window

    root = SimpleNamespace(features=built["cfg"], simulator=SimpleNamespace(ground_truth_dir=tmp_path / "none"))
    full = built["training"]
    stamps = pd.to_datetime(full["event_timestamp"], utc=True).sort_values()
    start, end = stamps.iloc[len(stamps) // 4], stamps.iloc[3 * len(stamps) // 4]
    info = feature_platform_window(root, tmp_path / "window.parquet", start=start, end=end)
    window = pd.read_parquet(tmp_path / "window.parquet")
    inside = full[(pd.to_datetime(full["event_timestamp"], utc=True) >= start) & (full["event_timestamp"] < end)]
    assert info["rows"] == len(window) == len(inside) > 0
    assert pd.to_datetime(window["event_timestamp"], utc=True).between(start, end, inclusive="left").all()
    assert sorted(window["example_id"]) == sorted(inside["example_id"])
    newest_before_end = max(e["timestamp_ms"] for e in built["events"] if e["timestamp_ms"] < end.value // 10**6)
    assert pd.Timestamp(info["events_end"]) <= end
    assert pd.Timestamp(info["events_end"]).value // 10**6 <= newest_before_end
