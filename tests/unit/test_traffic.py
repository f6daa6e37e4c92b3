"""Simulated users calling a recommender: the feedback events, determinism, the response model, taste shifts."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from flywheel.config.simulator import SimulatorConfig
from flywheel.events.log import Message
from flywheel.events.validation import EventValidator
from flywheel.simulator.catalog import GENRES
from flywheel.simulator.traffic import Served, SimulatedUsers, TasteShift
from flywheel.simulator.world import World, build_world


class Sink:
    """A producer that keeps what it is sent."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def send_many(self, messages: list[Message]) -> int:
        self.messages.extend(messages)
        return len(messages)

    def flush(self) -> None:
        pass

    def events(self) -> list[dict]:
        return [orjson.loads(value) for _, value, _ in self.messages]


@pytest.fixture(scope="module")
def world() -> World:
    return build_world(SimulatorConfig(users=300, items=200, days=1, seed=9))


def ranked(world: World, sign: float):
    """Rank the first titles by true affinity (sign 1) or its negation (sign -1)."""
    cat, users = world.catalog, {u: i for i, u in enumerate(world.population.user_ids)}
    ids = np.array(cat.content_ids[:150])

    def recommend(user_id: str, k: int) -> Served:
        score = sign * (cat.vectors[:150] @ world.population.taste[users[user_id]] + cat.bias[:150])
        top = np.argsort(-score, kind="stable")[:k]
        return Served("req-" + user_id, ids[top].tolist(), score[top].tolist(), "canary", "m", "7", "r1")

    return recommend


def test_every_served_title_gets_an_impression_with_the_contract_context(world: World) -> None:
    sink = Sink()
    summary = SimulatedUsers(world, seed=1).run(ranked(world, 1.0), sink, requests=40, k=5)
    events = sink.events()
    impressions = [e for e in events if e["event_type"] == "impression"]
    assert summary.requests == 40 and summary.impressions == len(impressions) == 200
    assert {e["context"]["position"] for e in impressions} == {0, 1, 2, 3, 4}
    first = impressions[0]["context"]
    assert (first["algorithm"], first["experiment_id"], first["variant"]) == ("m:7", "r1", "canary")
    kinds = {e["event_type"] for e in events}
    assert {"impression", "click", "playback.started"} <= kinds
    assert sum(e["event_type"] == "click" for e in events) == summary.clicks > 0
    validator = EventValidator()
    assert all(validator.validate_bytes(v, now_ms=ts).ok for _, v, ts in sink.messages)
    times = [ts for _, _, ts in sink.messages]
    assert times == sorted(times)  # written in time order


def test_the_same_seed_and_answers_give_the_same_events(world: World) -> None:
    a, b, c = Sink(), Sink(), Sink()
    SimulatedUsers(world, seed=1).run(ranked(world, 1.0), a, requests=30)
    SimulatedUsers(world, seed=1).run(ranked(world, 1.0), b, requests=30)
    SimulatedUsers(world, seed=2).run(ranked(world, 1.0), c, requests=30)
    assert a.messages == b.messages
    assert a.messages != c.messages


def test_a_better_ranking_earns_more_clicks_and_watch_time(world: World) -> None:
    good = SimulatedUsers(world, seed=3).run(ranked(world, 1.0), Sink(), requests=400)
    bad = SimulatedUsers(world, seed=3).run(ranked(world, -1.0), Sink(), requests=400)
    assert good.ctr > 3 * bad.ctr
    assert good.watch_seconds > 3 * bad.watch_seconds


def test_position_bias_lowers_clicks_down_the_list(world: World) -> None:
    users = SimulatedUsers(world, seed=4)
    same = world.catalog.content_ids[0]

    def one_title(user_id: str, k: int) -> Served:
        return Served("r", [same] * k, [1.0] * k, "champion", "m", "1")

    sink = Sink()
    users.run(one_title, sink, requests=3000, k=4)
    clicks = np.bincount([e["context"]["position"] for e in sink.events() if e["event_type"] == "click"], minlength=4)
    assert clicks[0] > clicks[1] > clicks[3]


def test_unknown_titles_are_shown_but_never_clicked_and_failures_are_counted(world: World) -> None:
    calls = {"n": 0}

    def flaky(user_id: str, k: int) -> Served:
        calls["n"] += 1
        if calls["n"] % 2:
            raise ConnectionError("server down")
        return Served("r", ["not-a-title"] * k, [0.0] * k, "champion", "m", "1")

    sink = Sink()
    summary = SimulatedUsers(world, seed=5).run(flaky, sink, requests=20, k=3)
    assert (summary.requests, summary.failed, summary.impressions, summary.clicks) == (10, 10, 30, 0)
    assert summary.last_error == "ConnectionError: server down"


def test_a_taste_shift_changes_tastes_from_its_time_on(world: World) -> None:
    start = world.end_ms
    shift = TasteShift(toward={"documentary": 1.0}, users_fraction=1.0, strength=2.0, at_ms=start + 60_000)
    users = SimulatedUsers(world, seed=6, start_ms=start, taste_shift=shift)
    user = int(np.flatnonzero(~world.population.is_bot)[0])
    before, after = users.taste(user, start), users.taste(user, start + 60_000)
    np.testing.assert_array_equal(before, world.population.taste[user])
    assert not np.allclose(before, after)
    docs = [c for c, g in zip(world.catalog.content_ids, world.catalog.primary_genre.tolist(), strict=True)
            if GENRES[g] == "documentary"][:20]  # fmt: skip
    assert users.affinity(user, docs, start + 60_000).mean() > users.affinity(user, docs, start).mean()
