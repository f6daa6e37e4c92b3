"""Labels of training examples, and the inputs of the backfill (log scan, catalog, users)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pandas as pd
import pytest

from flywheel.events.local_log import LocalEventLog
from flywheel.events.validation import EventValidator
from flywheel.features.sources import SourceError, flatten_events, load_catalog, load_users, scan_events
from flywheel.features.training_set import LABELS, label_impressions
from tests.unit.features.factory import MIN, T0, event

WINDOW = 30 * MIN


def _labels(events: list[dict], durations: dict[str, float], example_event: str = "impression") -> pd.DataFrame:
    return label_impressions(flatten_events(events), durations, WINDOW, example_event=example_event)


def test_each_label_counts_responses_inside_the_window_only() -> None:
    events = [
        event("impression", T0, position=2, propensity=0.25, event_id="00000000-0000-4000-8000-000000000001"),
        event("click", T0 + MIN),
        event("playback.paused", T0 + 10 * MIN, watch=1000.0),
        event("playback.stopped", T0 + 20 * MIN, watch=900.0),  # 1900 / 3600 = 0.53 > 0.5
        event("like", T0 + WINDOW),  # exactly at the end: inside
        event("add_to_list", T0 + WINDOW + 1),  # after the window: not credited
        event("playback.completed", T0 - 1, watch=5.0),  # before the impression: not credited
        event("impression", T0 + 2 * MIN, content="c000002", position=0, propensity=1.0),
        event("click", T0 + 3 * MIN, user="u000002", content="c000002"),  # another user's click
    ]
    got = _labels(events, {"c000001": 3600.0}).set_index("content_id")
    first = got.loc["c000001"]
    assert [int(first[label]) for label in LABELS] == [1, 1, 0, 1, 0]
    assert first["watch_fraction"] == pytest.approx(1900 / 3600)
    assert (first["position"], first["propensity"]) == (2, 0.25)
    assert first["example_id"] == "00000000-0000-4000-8000-000000000001"
    second = got.loc["c000002"]
    assert [int(second[label]) for label in LABELS] == [0, 0, 0, 0, 0]
    assert second["watch_fraction"] == 0.0


def test_the_event_duration_is_the_fallback_and_watch_fraction_can_miss() -> None:
    events = [
        event("impression", T0, content="c000009"),
        event("playback.stopped", T0 + MIN, content="c000009", watch=40.0, duration=100.0),
    ]
    got = _labels(events, {})
    assert got["watch_fraction"].tolist() == [0.4]
    assert got["label_watch_50"].tolist() == [0]


def test_imported_plays_are_examples_when_there_are_no_impressions() -> None:
    events = [
        event("playback.started", T0, duration=200.0),
        event("like", T0, rating=5.0),  # the importer stamps the like at the play's time
        event("playback.completed", T0 + 190_000, watch=190.0, duration=200.0),
    ]
    got = _labels(events, {}, example_event="playback.started")
    assert [int(got.iloc[0][label]) for label in LABELS] == [1, 1, 1, 1, 0]
    assert got["watch_fraction"].tolist() == [0.95]


def _log(tmp_path: Path, payloads: list[bytes]) -> LocalEventLog:
    log = LocalEventLog(tmp_path / "log", partitions=3)
    producer = log.producer("events")
    for i, payload in enumerate(payloads):
        producer.send(f"u{i % 5}", payload, T0)
    producer.flush()
    return log


def test_scan_keeps_valid_events_once_and_counts_the_rest(tmp_path: Path) -> None:
    good = [event("click", T0 + i) for i in range(7)]
    payloads = [orjson.dumps(e) for e in good] + [orjson.dumps(good[0]), b"{oops", b"[]"]
    scan = scan_events(_log(tmp_path, payloads), "events", EventValidator(), now_ms=T0 + MIN)
    assert (scan.read, len(scan.events), scan.duplicates, scan.invalid) == (10, 7, 1, 2)
    assert scan.rejections == {"malformed_json": 1, "not_an_object": 1}
    assert sorted(e["event_id"] for e in scan.events) == sorted(e["event_id"] for e in good)


def test_scan_names_a_missing_or_empty_topic(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="'events' cannot be read"):
        scan_events(LocalEventLog(tmp_path / "none"), "events", EventValidator())
    log = LocalEventLog(tmp_path / "empty")
    log.create_topic("events")
    with pytest.raises(SourceError, match="'events' is empty"):
        scan_events(log, "events", EventValidator())


def test_catalog_and_users_accept_timestamps_or_milliseconds(tmp_path: Path) -> None:
    pd.DataFrame(
        {
            "content_id": ["c1", "c2"],
            "genres": [["drama"], None],
            "creator_id": ["k1", "k2"],
            "duration_seconds": [60.0, None],
            "release_ts": pd.to_datetime([T0, T0 + 1000], unit="ms", utc=True),
        }
    ).to_parquet(tmp_path / "catalog.parquet")
    pd.DataFrame({"user_id": ["u1"], "tier": ["free"], "signup_ts": [T0]}).to_parquet(tmp_path / "users.parquet")
    catalog = load_catalog(tmp_path / "catalog.parquet")
    assert catalog["release_ts_ms"].tolist() == [T0, T0 + 1000]
    assert catalog["genres"].tolist() == [["drama"], []]
    assert load_users(tmp_path / "users.parquet")["signup_ts_ms"].tolist() == [T0]
    assert load_catalog(None).empty and load_users(None).empty
    with pytest.raises(SourceError, match="catalog table .*nope.parquet does not exist"):
        load_catalog(tmp_path / "nope.parquet")
