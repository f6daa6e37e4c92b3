"""Simulated users call the real model server (`flywheel serve`) over HTTP and answer with feedback events."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from flywheel.config.simulator import SimulatorConfig
from flywheel.events.local_log import LocalEventLog
from flywheel.experiments.source import read_events
from flywheel.serving.prediction_log import read_predictions
from flywheel.simulator.traffic import SimulatedUsers, http_recommender
from flywheel.simulator.world import build_world
from tests.support.recommender import write_bundle
from tests.support.services import model_server

pytestmark = pytest.mark.integration


def test_simulated_users_call_the_server_and_their_feedback_joins_its_prediction_log(tmp_path: Path) -> None:
    bundle, _ = write_bundle(tmp_path / "bundle")
    world = build_world(SimulatorConfig(users=200, items=100, days=1, seed=4))
    events_log = LocalEventLog(tmp_path / "log", partitions=2)
    with model_server(tmp_path / "home", "--bundle", str(bundle), "--features", "none") as server:
        users = SimulatedUsers(world, seed=3, realtime=True)
        producer = events_log.producer("events")
        summary = users.run(http_recommender(server.http_url), producer, requests=25, k=4)
        users.drain(producer)  # the playbacks still running when the traffic stopped
        served = LocalEventLog(server.home / "log", partitions=8)
        deadline = time.monotonic() + 10
        records = []
        while len(records) < 25 and time.monotonic() < deadline:  # the writer flushes within its interval
            records = list(read_predictions(served))
    assert (summary.requests, summary.failed, summary.impressions) == (25, 0, 100), summary.last_error
    assert summary.by_variant == {"champion": 25}
    impressions = read_events(events_log)
    impressions = impressions[impressions["event_type"] == "impression"]
    assert len(impressions) == 100
    served_pairs = {(r.user_id, item) for r in records for item in r.items}
    logged_pairs = set(zip(impressions["user_id"], impressions["content_id"], strict=True))
    assert logged_pairs == served_pairs  # every impression is a title the server logged for that user
    events_log.close()
