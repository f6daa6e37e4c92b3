"""The platform simulator: determinism, the statistics it promises, scenarios, ground truth, CLI."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from flywheel.cli.main import app
from flywheel.config import FlywheelConfig
from flywheel.config.models import EventLogConfig, LocalLogConfig
from flywheel.config.simulator import (
    BotTrafficScenario,
    BrokenEventsScenario,
    ClockSkewScenario,
    DeviceShiftScenario,
    DuplicatesScenario,
    LateEventsScenario,
    OutageScenario,
    ScenariosConfig,
    SimulatedExperiment,
    SimulatorConfig,
    TasteDriftScenario,
)
from flywheel.events.encoding import hex_ids
from flywheel.events.local_log import LocalEventLog
from flywheel.events.validation import EventValidator
from flywheel.simulator.catalog import GENRES
from flywheel.simulator.engine import (
    GroundTruth,
    build_world,
    export_ground_truth,
    generate_batches,
    simulate,
    true_affinity,
)
from flywheel.simulator.population import assign_variant

DAY_MS = 86_400_000


def small(**overrides: Any) -> SimulatorConfig:
    """A small world that still yields tens of thousands of events per day."""
    base: dict[str, Any] = {"users": 1500, "items": 400, "days": 1, "new_items_per_day": 20, "seed": 11}
    base.update(overrides)
    return SimulatorConfig(**base)


def messages(cfg: SimulatorConfig) -> list[tuple[str, bytes, int]]:
    return [m for batch in generate_batches(cfg) for m in batch.messages]


def events(cfg: SimulatorConfig) -> list[dict[str, Any]]:
    return [orjson.loads(value) for _, value, _ in messages(cfg)]


def ctr_by_position(evs: list[dict[str, Any]], *, bots: set[str] | None = None) -> np.ndarray:
    shown: Counter[int] = Counter()
    clicked: Counter[int] = Counter()
    for e in evs:
        if e["context"]["page"] != "home" or (bots is not None and e["user_id"] not in bots):
            continue
        if e["event_type"] == "impression":
            shown[e["context"]["position"]] += 1
        elif e["event_type"] == "click":
            clicked[e["context"]["position"]] += 1
    return np.array([clicked[p] / shown[p] for p in sorted(shown)])


# --- determinism ------------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_another_seed_does_not() -> None:
    cfg = small(users=300, items=100)
    first, second = messages(cfg), messages(cfg)
    assert first == second
    other = messages(cfg.model_copy(update={"seed": 12}))
    assert [m[1] for m in other[:100]] != [m[1] for m in first[:100]]


def test_event_ids_are_unique_uuid4_strings() -> None:
    evs = events(small(users=300, items=100))
    ids = [e["event_id"] for e in evs]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 36 and i[14] == "4" and i[19] in "89ab" for i in ids)


@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=20))
def test_hex_ids_format_any_bits_as_a_uuid4(words: list[int]) -> None:
    import uuid

    hi = np.array(words, dtype=np.uint64)
    for text, word in zip(hex_ids(hi, hi[::-1].copy()), words, strict=True):
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and str(parsed) == text
        assert text.replace("-", "")[:12] == f"{word:016x}"[:12]


# --- validity, structure -------------------------------------------------------------------------


def test_every_event_is_valid_schema_v2_from_the_simulator() -> None:
    cfg = small(users=800, items=200)
    evs = events(cfg)
    now = build_world(cfg).end_ms + 6 * 3_600_000  # sessions at midnight run past the last day
    validator = EventValidator()
    bad = [validator.validate(e, now_ms=now).reason for e in evs if not validator.validate(e, now_ms=now).ok]
    assert bad == []
    assert {e["source"] for e in evs} == {"simulator"}
    assert {e["schema_version"] for e in evs} == {2}
    kinds = Counter(e["event_type"] for e in evs)
    for kind in ("impression", "click", "playback.started", "playback.stopped", "search", "scroll", "like"):
        assert kinds[kind] > 0, kind
    impressions = [e for e in evs if e["event_type"] == "impression"]
    assert all(0 < e["context"]["propensity"] <= 1 for e in impressions)
    assert all(e["context"]["algorithm"] for e in impressions)


def test_plays_follow_clicks_and_stop_after_they_start() -> None:
    evs = events(small(users=600, items=200))
    first_click: dict[tuple[str, str], int] = {}
    starts: dict[tuple[str, str], set[int]] = defaultdict(set)
    ends = 0
    for e in evs:  # the log is in time order here (no late events)
        key = (e["session_id"], e["content_id"])
        if e["event_type"] == "click":
            first_click.setdefault(key, e["timestamp_ms"])
        elif e["event_type"] == "playback.started":
            assert first_click[key] < e["timestamp_ms"]
            starts[key].add(e["timestamp_ms"])
        elif e["event_type"] in ("playback.stopped", "playback.completed"):
            ends += 1
            assert e["timestamp_ms"] - round(e["watch_seconds"] * 1000) in {
                t + d for t in starts[key] for d in (-1, 0, 1)
            }
            assert 0 <= e["watch_seconds"] <= e["duration_seconds"]
            if e["event_type"] == "playback.completed":
                assert e["watch_seconds"] == e["duration_seconds"]
    assert ends == sum(len(v) for v in starts.values()) > 100


def test_log_order_is_the_arrival_order_and_time_moves_forward_without_faults() -> None:
    ts = [t for _, _, t in messages(small(users=500, items=200))]
    assert ts == sorted(ts)


# --- the statistics it promises ------------------------------------------------------------------


def test_position_bias_is_visible_in_ctr_by_position_and_follows_the_setting() -> None:
    biased = ctr_by_position(events(small(position_bias=1.5)))
    assert all(a > b for a, b in zip(biased[:4], biased[1:5], strict=True))
    assert biased[0] > 3 * biased[-1]
    flat = ctr_by_position(events(small(position_bias=0.0)))
    # without position bias only the policy's ranking makes top positions better
    assert biased[0] / biased[-1] > 2 * (flat[0] / flat[-1])


def test_watch_fraction_grows_with_true_affinity(tmp_path: Path) -> None:
    cfg = small(users=1000, items=300, ground_truth_dir=tmp_path)
    export_ground_truth(build_world(cfg), tmp_path)
    ends = [e for e in events(cfg) if e["event_type"] in ("playback.stopped", "playback.completed")]
    fraction = np.array([e["watch_seconds"] / e["duration_seconds"] for e in ends])
    affinity = true_affinity([e["user_id"] for e in ends], [e["content_id"] for e in ends], tmp_path)
    assert np.corrcoef(affinity, fraction)[0, 1] > 0.3


def _doc_share(evs: list[dict[str, Any]], genre_of: dict[str, str], start: int, end: int) -> float:
    plays = [e for e in evs if e["event_type"] == "playback.started" and start <= e["timestamp_ms"] < end]
    return sum(genre_of[e["content_id"]] == "documentary" for e in plays) / len(plays)


def test_genre_mix_of_plays_changes_after_the_drift_time_as_configured() -> None:
    drift = TasteDriftScenario(enabled=True, at_day=1, users_fraction=1.0, toward_genres={"documentary": 1}, strength=2)
    cfg = small(users=800, days=2, scenarios=ScenariosConfig(taste_drift=drift))
    world = build_world(cfg)
    genre_of = {
        c: GENRES[g] for c, g in zip(world.catalog.content_ids, world.catalog.primary_genre.tolist(), strict=True)
    }
    at = world.start_ms + DAY_MS
    drifted = events(cfg)
    before = _doc_share(drifted, genre_of, world.start_ms, at)
    after = _doc_share(drifted, genre_of, at, at + DAY_MS)
    assert before < 0.12 and after > before + 0.2  # measured: 0.08 -> 0.39
    steady = events(cfg.model_copy(update={"scenarios": ScenariosConfig()}))
    assert abs(_doc_share(steady, genre_of, at, at + DAY_MS) - _doc_share(steady, genre_of, world.start_ms, at)) < 0.03


def test_taste_scale_spreads_the_tastes_and_the_drift_in_proportion() -> None:
    """The same people at another ``taste_scale``: the genre part of every taste and the drift's
    move are scaled, the idiosyncratic noise is not, and stronger tastes concentrate the plays."""
    drift = TasteDriftScenario(enabled=True, at_day=1, users_fraction=0.5, toward_genres={"documentary": 1}, strength=2)
    cfg = small(users=400, days=3, scenarios=ScenariosConfig(taste_drift=drift))
    mild, strong = build_world(cfg), build_world(cfg.model_copy(update={"taste_scale": 8.0}))
    pop = mild.population
    genre_part = pop.genre_weights @ mild.directions
    np.testing.assert_allclose(strong.population.taste - pop.taste, 3.0 * genre_part, atol=1e-9)
    np.testing.assert_array_equal(strong.drifted, mild.drifted)
    np.testing.assert_allclose(
        strong.taste_drifted - strong.population.taste, 8.0 / 5.0 * (mild.taste_drifted - pop.taste), atol=1e-9
    )
    genre_of = {c: g for c, g in zip(mild.catalog.content_ids, mild.catalog.primary_genre.tolist(), strict=True)}

    def favourite_share(config: SimulatorConfig) -> float:
        """Share of each user's plays in the genre the user's mixture weighs most."""
        index = {u: i for i, u in enumerate(pop.user_ids)}
        plays = [
            (index[e["user_id"]], genre_of[e["content_id"]])
            for e in events(config)
            if e["event_type"] == "playback.started" and e["user_id"] in index
        ]
        favourite = pop.genre_weights.argmax(axis=1)
        return float(np.mean([favourite[u] == g for u, g in plays]))

    calm = cfg.model_copy(update={"scenarios": ScenariosConfig()})
    shares = favourite_share(calm), favourite_share(calm.model_copy(update={"taste_scale": 8.0}))
    assert shares[1] > shares[0] + 0.05  # measured: 0.16 and 0.21


def test_duplicates_appear_at_the_configured_rate_with_identical_bytes() -> None:
    cfg = small(scenarios=ScenariosConfig(duplicates=DuplicatesScenario(enabled=True, rate=0.04, max_copies=1)))
    values = [v for _, v, _ in messages(cfg)]
    by_id: dict[str, set[bytes]] = defaultdict(set)
    copies: Counter[str] = Counter()
    for v in values:
        event_id = orjson.loads(v)["event_id"]
        by_id[event_id].add(v)
        copies[event_id] += 1
    originals = len(copies)
    rate = (len(values) - originals) / originals
    assert rate == pytest.approx(0.04, abs=0.006)
    assert all(len(bodies) == 1 for bodies in by_id.values())
    assert max(copies.values()) == 2


def test_late_events_appear_at_the_configured_rate() -> None:
    late = LateEventsScenario(enabled=True, rate=0.03, min_delay_seconds=600, max_delay_seconds=3600)
    ts = [t for _, _, t in messages(small(scenarios=ScenariosConfig(late_events=late)))]
    running = np.maximum.accumulate(np.array(ts))
    behind = (running - np.array(ts)) >= 300_000  # more than 5 minutes behind the log's head
    assert behind.mean() == pytest.approx(0.03, abs=0.006)


def test_broken_events_are_rejected_for_varied_reasons_and_the_rest_validate() -> None:
    cfg = small(users=1000, scenarios=ScenariosConfig(broken_events=BrokenEventsScenario(enabled=True, rate=0.03)))
    now = build_world(cfg).end_ms + 6 * 3_600_000
    validator = EventValidator()
    results = [validator.validate_bytes(v, now_ms=now) for _, v, _ in messages(cfg)]
    rejected = [r for r in results if not r.ok]
    assert len(rejected) / len(results) == pytest.approx(0.03, abs=0.006)
    codes = Counter(r.rejections[0].code for r in rejected)
    expected = {
        "malformed_json",
        "wrong_type",
        "unknown_event_type",
        "missing_field",
        "negative_value",
        "future_timestamp",
    }
    assert expected <= set(codes)
    assert min(codes[c] for c in expected) >= 10


def test_clock_skew_shifts_timestamps_of_some_devices_within_the_bound() -> None:
    skew = ClockSkewScenario(enabled=True, devices_fraction=0.2, max_skew_seconds=90)
    cfg = small(users=800, scenarios=ScenariosConfig(clock_skew=skew))
    world = build_world(cfg)
    offsets = world.population.devices.clock_skew_ms
    assert 0.15 < (offsets != 0).mean() < 0.25 and np.abs(offsets).max() <= 90_000
    batches = list(generate_batches(cfg, world))
    ts = np.array([t for b in batches for _, _, t in b.messages])
    behind = np.maximum.accumulate(ts) - ts  # the log is in true-time order: skew shows as disorder
    assert 0 < behind.max() <= 2 * 90_000
    assert sum(b.delivery.skewed for b in batches) > 0
    device_of = {d["device_id"]: i for i, d in enumerate(world.vocabulary.devices)}
    straight = events(small(users=800))
    skewed = events(cfg)
    for a, b in zip(straight[:3000], skewed[:3000], strict=True):
        assert a["event_id"] == b["event_id"]
        assert b["timestamp_ms"] - a["timestamp_ms"] == offsets[device_of[b["device"]["device_id"]]]


def test_outage_removes_the_window_and_is_counted() -> None:
    cfg = small(scenarios=ScenariosConfig(outage=OutageScenario(enabled=True, at_day=0.5, hours=2)))
    world = build_world(cfg)
    start, end = world.start_ms + DAY_MS // 2, world.start_ms + DAY_MS // 2 + 2 * 3_600_000
    batches = list(generate_batches(cfg))
    ts = np.array([t for b in batches for _, _, t in b.messages])
    assert not ((ts >= start) & (ts < end)).any()
    assert ((ts >= start - 3_600_000) & (ts < start)).sum() > 100
    assert sum(b.delivery.dropped_outage for b in batches) > 1000


def test_bots_click_regardless_of_position() -> None:
    cfg = small(users=1000, scenarios=ScenariosConfig(bots=BotTrafficScenario(enabled=True, users_fraction=0.03)))
    world = build_world(cfg)
    bots = {u for u, b in zip(world.population.user_ids, world.population.is_bot.tolist(), strict=True) if b}
    assert len(bots) == 30
    humans = build_world(small(users=1000)).population  # a scenario adds bots, it changes no human
    np.testing.assert_array_equal(world.population.taste[:1000], humans.taste)
    np.testing.assert_array_equal(world.population.device_list[: len(humans.device_list)], humans.device_list)
    ctr = ctr_by_position(events(cfg), bots=bots)
    assert ctr.max() - ctr.min() < 0.08 and ctr.mean() == pytest.approx(0.3, abs=0.05)


def test_device_mix_shifts_after_the_configured_time() -> None:
    shift = DeviceShiftScenario(enabled=True, at_day=1, to_device="console", sessions_fraction=0.6)
    cfg = small(days=2, scenarios=ScenariosConfig(device_shift=shift))
    at = build_world(cfg).start_ms + DAY_MS
    sessions: dict[str, tuple[int, str]] = {}
    for e in events(cfg):
        sessions.setdefault(e["session_id"], (e["timestamp_ms"], e["device"]["type"]))
    before = [d for t, d in sessions.values() if t < at]
    after = [d for t, d in sessions.values() if t >= at + 60_000]
    share_before = before.count("console") / len(before)
    share_after = after.count("console") / len(after)
    assert share_before < 0.1
    assert share_after == pytest.approx(share_before * 0.4 + 0.6, abs=0.04)


def test_new_titles_are_shown_only_after_they_arrive() -> None:
    cfg = small(days=2, new_items_per_day=50)
    world = build_world(cfg)
    arrival = dict(zip(world.catalog.content_ids, world.catalog.arrival_ms.tolist(), strict=True))
    new = set(world.catalog.content_ids[world.catalog.initial_count :])
    shown_new = [e for e in events(cfg) if e["event_type"] == "impression" and e["content_id"] in new]
    assert len({e["content_id"] for e in shown_new}) > 50
    assert all(e["timestamp_ms"] >= arrival[e["content_id"]] for e in shown_new)


# --- experiments ---------------------------------------------------------------------------------


def test_experiment_split_context_from_start_and_planted_click_lift() -> None:
    exp = SimulatedExperiment(
        id="ranker", start=0.5, variants={"control": 0.7, "treatment": 0.3}, click_lift={"treatment": 0.5}
    )
    cfg = small(users=2500, experiments=[exp])
    world = build_world(cfg)
    at = world.start_ms + DAY_MS // 2
    share = (world.experiments[0].assignment == 1).mean()
    assert share == pytest.approx(0.3, abs=0.03)
    arm = {u: assign_variant("ranker", u, exp.variants) for u in world.population.user_ids}
    evs = events(cfg)
    session_start: dict[str, int] = {}
    for e in evs:
        session_start.setdefault(e["session_id"], e["timestamp_ms"])
    shown: Counter[str] = Counter()
    clicked: Counter[str] = Counter()
    for e in evs:
        context = e["context"]
        if session_start[e["session_id"]] < at:  # the pre-period: sessions that began before the start
            assert context["experiment_id"] is None and context["variant"] is None
            continue
        assert context["experiment_id"] == "ranker" and context["variant"] == arm[e["user_id"]]
        if e["event_type"] in ("impression", "click"):
            (shown if e["event_type"] == "impression" else clicked)[context["variant"]] += 1
    lift = (clicked["treatment"] / shown["treatment"]) / (clicked["control"] / shown["control"]) - 1
    assert lift == pytest.approx(0.5, abs=0.15)  # measured: 0.53


def test_assign_variant_is_the_documented_sha256_rule() -> None:
    digest = hashlib.sha256(b"exp:u000001").digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    expected = "a" if point < 0.25 else "b"
    assert assign_variant("exp", "u000001", {"a": 1, "b": 3}) == expected


@settings(max_examples=50)
@given(
    st.text(min_size=1, max_size=12),
    st.text(min_size=1, max_size=12),
    st.dictionaries(st.sampled_from("abcdef"), st.floats(0.01, 10), min_size=1, max_size=6),
)
def test_assign_variant_is_deterministic_and_returns_a_variant(
    exp_id: str, user: str, variants: dict[str, float]
) -> None:
    chosen = assign_variant(exp_id, user, variants)
    assert chosen in variants
    assert assign_variant(exp_id, user, dict(variants)) == chosen


# --- ground truth --------------------------------------------------------------------------------


def test_ground_truth_round_trip_recomputes_the_oracle_before_and_after_drift(tmp_path: Path) -> None:
    drift = TasteDriftScenario(enabled=True, at_day=1, users_fraction=0.5, toward_genres={"jazz": 1}, strength=1)
    cfg = small(users=200, items=100, days=2, scenarios=ScenariosConfig(taste_drift=drift))
    world = build_world(cfg)
    export_ground_truth(world, tmp_path)
    users = world.population.user_ids[:50]
    items = world.catalog.content_ids[:80]
    before = true_affinity(users, items, tmp_path, outer=True)
    logits = world.population.taste[:50] @ world.catalog.vectors[:80].T + world.catalog.bias[:80]
    np.testing.assert_allclose(before, 1 / (1 + np.exp(-logits)))
    truth = GroundTruth.load(tmp_path)
    after = true_affinity(users, items, truth, at_ms=world.start_ms + DAY_MS, outer=True)
    moved = world.drifted[:50]
    assert moved.any() and (~moved).any()
    np.testing.assert_allclose(after[~moved], before[~moved])
    assert not np.allclose(after[moved], before[moved])
    pairs = true_affinity(users[:3], items[:3], truth)
    np.testing.assert_allclose(pairs, np.diag(before[:3, :3]))

    catalog = pq.read_table(tmp_path / "catalog.parquet").to_pandas()
    assert set(catalog.columns) >= {
        "content_id",
        "content_type",
        "genres",
        "primary_genre",
        "creator_id",
        "duration_seconds",
        "release_ts",
        "arrival_ts",
        "synopsis",
    }
    assert catalog["is_new"].sum() == cfg.new_items_per_day * cfg.days
    users_table = pq.read_table(tmp_path / "users.parquet").to_pandas()
    assert set(users_table.columns) >= {"user_id", "tier", "signup_ts", "household_id", "device_ids", "device_types"}
    assert (users_table.groupby("household_id").size() > 1).any()
    assert (users_table["device_ids"].map(len) > 1).any()
    assert truth.manifest["drift_at_ms"] == world.start_ms + DAY_MS


# --- writing and the CLI -------------------------------------------------------------------------


def test_simulate_writes_every_event_to_the_log(tmp_path: Path) -> None:
    scenarios = ScenariosConfig(duplicates=DuplicatesScenario(enabled=True, rate=0.01))
    config = FlywheelConfig(
        event_log=EventLogConfig(partitions=4, local=LocalLogConfig(path=tmp_path / "log")),
        simulator=small(users=300, items=100, scenarios=scenarios, ground_truth_dir=tmp_path / "gt"),
    )
    summary = simulate(config)
    log = LocalEventLog(tmp_path / "log", partitions=4)
    records = [r for p in range(4) for r in log.read("events", p, 0, 10**6)]
    assert len(records) == summary.events_written == sum(summary.by_type.values())
    assert summary.delivery.duplicates > 0
    validator = EventValidator()
    for record in records[:2000]:
        event = orjson.loads(record.value)
        assert record.key == event["user_id"].encode() and record.timestamp_ms == event["timestamp_ms"]
        assert validator.validate(event, now_ms=summary.end_ms).ok
    assert (tmp_path / "gt" / "manifest.json").exists()


def test_cli_simulate_and_summary(tmp_path: Path) -> None:
    config = tmp_path / "flywheel.yaml"
    config.write_text(
        f"""
home: {tmp_path}
event_log:
  partitions: 2
  local: {{path: {tmp_path / "log"}}}
simulator:
  users: 200
  items: 50
  days: 1
  ground_truth_dir: {tmp_path / "gt"}
  scenarios:
    late_events: {{enabled: true, rate: 0.01}}
"""
    )
    result = CliRunner().invoke(app, ["simulate", "--config", str(config), "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "impression" in result.output and "late events injected" in result.output
    assert (tmp_path / "gt" / "users.parquet").exists()
    ends = LocalEventLog(tmp_path / "log", partitions=2).end_offsets("events")
    assert sum(ends.values()) > 1000


def test_unknown_drift_genre_is_a_clear_error() -> None:
    drift = TasteDriftScenario(enabled=True, toward_genres={"polka": 1.0})
    with pytest.raises(ValueError, match="polka"):
        build_world(small(scenarios=ScenariosConfig(taste_drift=drift)))


def test_shipped_defaults_plant_the_demo_experiment_after_a_pre_period() -> None:
    from flywheel.config import load_config

    sim = load_config(None, env={}).simulator
    assert sim.days >= 4
    (exp,) = sim.experiments
    assert exp.id == "home_row_ranker_v2" and exp.start == 3
    assert exp.variants == {"control": 0.5, "treatment": 0.5} and exp.click_lift == {"treatment": 0.08}


def test_content_explains_most_of_a_titles_latent_vector() -> None:
    """Titles of one creator, or on one synopsis subject, are closer than titles of one genre alone."""
    world = build_world(small(users=50, items=3000, new_items_per_day=0))
    cat = world.catalog
    vectors = cat.vectors
    subject = np.array([s.split(" about ")[1].split(" who ")[0][:12] for s in cat.synopses])

    def mean_distance(mask_fn: Any) -> float:
        rng = np.random.default_rng(0)
        a, b = rng.integers(0, len(vectors), (2, 200_000))
        keep = (a != b) & mask_fn(a, b)
        return float(np.linalg.norm(vectors[a[keep]] - vectors[b[keep]], axis=1).mean())

    genre = lambda a, b: cat.primary_genre[a] == cat.primary_genre[b]  # noqa: E731
    same_genre = mean_distance(genre)
    same_creator = mean_distance(lambda a, b: genre(a, b) & (cat.creator[a] == cat.creator[b]))
    same_subject = mean_distance(lambda a, b: genre(a, b) & (subject[a] == subject[b]))
    assert same_creator < 0.85 * same_genre
    assert same_subject < same_genre
    # what is left once genre, creator and subject are known is a small part of the vector
    groups = set(zip(cat.creator.tolist(), cat.primary_genre.tolist(), strict=True))
    within = [vectors[(cat.creator == c) & (cat.primary_genre == g)] for c, g in groups]
    spread = np.mean([np.linalg.norm(v - v.mean(0), axis=1).mean() for v in within if len(v) > 3])
    assert spread < 0.6 * same_genre


def test_relevance_probability_is_the_simulators_response_model() -> None:
    """P(click, play, watch > half | shown at full examination), checked by drawing the same steps."""
    from flywheel.simulator.ground_truth import WATCH_CONCENTRATION, watch_mean, watch_past_probability

    rng = np.random.default_rng(3)
    n = 400_000
    for affinity in (0.05, 0.3, 0.7):
        clicked = rng.random(n) < 0.5 * affinity
        played = rng.random(n) < 0.85
        m = watch_mean(np.full(n, affinity))
        fraction = rng.beta(WATCH_CONCENTRATION * m, WATCH_CONCENTRATION * (1 - m))
        empirical = float(np.mean(clicked & played & (fraction > 0.5)))
        model = watch_past_probability(np.array([affinity]), max_click_probability=0.5, play_after_click=0.85)
        expected = float(model[0])
        assert empirical == pytest.approx(expected, rel=0.05, abs=2e-4)
    grows = watch_past_probability(np.linspace(0.01, 0.99, 50), max_click_probability=0.5, play_after_click=0.85)
    assert np.all(np.diff(grows) > 0)


def test_simulator_oracle_reads_the_behaviour_of_its_simulation(tmp_path: Path) -> None:
    from flywheel.simulator.ground_truth import SimulatorOracle, watch_past_probability

    cfg = small(users=60, items=50, max_click_probability=0.3, play_after_click=0.6)
    world = build_world(cfg)
    export_ground_truth(world, tmp_path)
    oracle = SimulatorOracle(tmp_path)
    aff = oracle(np.array(world.population.user_ids[:5] + ["nobody"]), np.array(world.catalog.content_ids[:7]))
    assert np.isneginf(aff[-1]).all() and np.isfinite(aff[:-1]).all()
    prob = oracle.relevance_probability(aff)
    assert (prob[-1] == 0).all()
    np.testing.assert_allclose(
        prob[:-1], watch_past_probability(aff[:-1], max_click_probability=0.3, play_after_click=0.6)
    )
