"""The simulator's traffic as a training window, without the event log and the feature store.

Tests, benchmarks and ``flywheel pipeline sample-data`` need a window in the models' training-set
contract (:data:`flywheel.models.contract.TRAINING_SET`), its catalog and its oracle in seconds.
:func:`simulate_window` runs the same world and sessions as :func:`flywheel.simulator.engine.simulate`
(no delivery faults: every event arrives, on time, once), labels each impression as the feature
platform does (:func:`flywheel.features.training_set.label_impressions`) and adds the user, content
and cross features computed from the simulated events before the impression's day (the feature
platform's definitions at day granularity: a day's impressions see the days before it).

``propensity`` is the probability that the slot was examined (the position-based model of
:func:`flywheel.simulator.sessions.examination_probability`), which the simulator knows exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from flywheel.config.simulator import SimulatorConfig
from flywheel.events.columns import EVENT_TYPES, EventColumns
from flywheel.simulator.catalog import CONTENT_TYPES, DAY_MS, GENRES
from flywheel.simulator.ground_truth import GroundTruth, SimulatorOracle, true_affinity
from flywheel.simulator.population import DEVICE_TYPES
from flywheel.simulator.sessions import SlateOrder, examination_probability, genre_axes, simulate_sessions
from flywheel.simulator.world import World, build_world, export_ground_truth, plan_day

SKIP_SECONDS = 30.0
"""A playback shorter than this is a skip (the feature platform's default threshold)."""
LABEL_WINDOW_MS = 4 * 3_600_000
"""Responses credited to an impression (the feature platform's default label window)."""


def catalog_frame(world: World) -> pd.DataFrame:
    """The world's catalog in the models' catalog contract (:data:`flywheel.models.contract.CATALOG`)."""
    cat = world.catalog
    genres = [
        [GENRES[p]] + ([GENRES[s]] if s >= 0 else [])
        for p, s in zip(cat.primary_genre.tolist(), cat.secondary_genre.tolist(), strict=True)
    ]
    return pd.DataFrame(
        {
            "content_id": np.array(cat.content_ids, dtype=object),
            "title": cat.titles,
            "content_type": [CONTENT_TYPES[t] for t in cat.content_type.tolist()],
            "genres": genres,
            "primary_genre": [GENRES[g] for g in cat.primary_genre.tolist()],
            "creator_id": [cat.creator_ids[c] for c in cat.creator.tolist()],
            "duration_seconds": cat.duration_s.astype(float),
            "release_ts": pd.to_datetime(cat.release_ms, unit="ms", utc=True),
            "synopsis": cat.synopses,
        }
    )


def ground_truth_of(world: World) -> GroundTruth:
    """The world's ground truth in memory (what :func:`export_ground_truth` writes, for the oracle)."""
    return GroundTruth(
        user_index={u: i for i, u in enumerate(world.population.user_ids)},
        content_index={c: i for i, c in enumerate(world.catalog.content_ids)},
        taste=world.population.taste,
        taste_drifted=world.taste_drifted,
        item_vectors=world.catalog.vectors,
        item_bias=world.catalog.bias,
        drift_at_ms=world.drift_at_ms,
        manifest={"config": world.cfg.model_dump(mode="json")},
    )


@dataclass(frozen=True)
class SimulatedWindow:
    """A simulated training window: the frame, its catalog and the world that made them."""

    world: World
    frame: pd.DataFrame
    """One row per impression, in the training-set contract, sorted by time."""
    catalog: pd.DataFrame

    @cached_property
    def oracle(self) -> SimulatorOracle:
        """The oracle for evaluation (true affinities and the chance of relevance)."""
        return SimulatorOracle(ground_truth_of(self.world))

    def true_affinity(self, user_ids: np.ndarray, content_ids: np.ndarray, *, outer: bool = True) -> np.ndarray:
        """True affinities before any taste drift: the (users, titles) matrix, or one per
        (user_ids[k], content_ids[k]) pair when ``outer`` is False."""
        return true_affinity(user_ids, content_ids, ground_truth_of(self.world), outer=outer)

    def save_ground_truth(self, folder: str | Path) -> Path:
        """Write the ground truth (the oracle's folder, :mod:`flywheel.simulator.ground_truth`); returns it."""
        return export_ground_truth(self.world, folder).parent


def simulated_events(world: World, *, order: SlateOrder = "policy", first_day: int = 0) -> EventColumns:
    """Every event of the world's days from ``first_day`` on (no delivery faults), in time order."""
    cfg = world.cfg
    axes = genre_axes(world.catalog)
    parts = []
    for day in range(first_day, cfg.days):
        plan = plan_day(world, day)
        rng = np.random.default_rng([cfg.seed, 2, day, 0])
        parts.append(simulate_sessions(rng, plan, world.catalog, cfg, genre_axes=axes, order=order))
    cols = EventColumns.concat(parts)
    return cols.take(np.argsort(cols.true_ms, kind="stable"))


def events_frame(world: World, cols: EventColumns) -> pd.DataFrame:
    """Events as the feature platform flattens them (the columns its labelling reads) plus ``day``."""
    cfg = world.cfg
    slot = cols.position >= 0
    exam = np.full(len(cols), np.nan)
    exam[slot] = examination_probability(
        cols.row[slot].astype(float),
        cols.position[slot].astype(float),
        row_decay=cfg.row_decay,
        position_bias=cfg.position_bias,
    )
    content = np.array(world.catalog.content_ids, dtype=object)
    users = np.array(world.population.user_ids, dtype=object)
    device_types = np.array(DEVICE_TYPES, dtype=object)[world.population.devices.device_type]
    return pd.DataFrame(
        {
            "event_id": np.arange(len(cols)).astype(str),
            "event_type": np.array(EVENT_TYPES, dtype=object)[cols.event_type],
            "user_id": users[cols.user],
            "user": cols.user,
            "content_id": np.where(cols.item >= 0, content[np.maximum(cols.item, 0)], None),
            "item": cols.item,
            "timestamp_ms": cols.true_ms,
            "day": (cols.true_ms - world.start_ms) // DAY_MS,
            "position": cols.position.astype(np.int64),
            "propensity": exam,
            "watch_seconds": cols.watch_s,
            "duration_seconds": cols.duration_s,
            "device_type": device_types[cols.device],
        }
    )


def _daily(events: pd.DataFrame, key: str, values: dict[str, pd.Series]) -> pd.DataFrame:
    """Per (key, day) sums of ``values`` (boolean or float series aligned with ``events``)."""
    table = pd.DataFrame({key: events[key], "day": events["day"], **{k: v.astype(float) for k, v in values.items()}})
    return table.groupby([key, "day"]).sum()


def _window(daily: pd.DataFrame, key: str, day: int, days: int) -> pd.DataFrame:
    """Sums over the ``days`` days before ``day`` (the day itself excluded), per key."""
    d = daily.index.get_level_values("day")
    return daily[(d >= day - days) & (d < day)].groupby(level=key).sum()


def add_features(world: World, events: pd.DataFrame, examples: pd.DataFrame) -> pd.DataFrame:
    """The user, content and cross features of each example, from the events of the days before its day."""
    cat = world.catalog
    genres = len(GENRES)
    hot = np.zeros((len(cat), genres + 1))
    hot[np.arange(len(cat)), cat.primary_genre] = 1.0
    second = cat.secondary_genre >= 0
    hot[np.flatnonzero(second), cat.secondary_genre[second]] = 1.0
    kind = events["event_type"]
    watched = kind.isin(["playback.stopped", "playback.completed"])
    watch = events["watch_seconds"].fillna(0.0).where(watched, 0.0)
    started = kind == "playback.started"
    completed = kind == "playback.completed"
    user_daily = _daily(
        events,
        "user",
        {
            "watch": watch,
            "ended": watched,
            "skips": watched & (watch < SKIP_SECONDS),
            "started": started,
            "completed": completed,
        },
    )
    share = (
        hot[np.maximum(events["item"].to_numpy(), 0)]
        / np.maximum(hot.sum(1, keepdims=True), 1)[np.maximum(events["item"].to_numpy(), 0)]
    )
    genre_watch = pd.DataFrame(share * watch.to_numpy()[:, None], columns=[f"g{i}" for i in range(genres + 1)])
    genre_daily = pd.concat([events[["user", "day"]].reset_index(drop=True), genre_watch], axis=1)
    genre_daily = genre_daily.groupby(["user", "day"]).sum()
    item_daily = _daily(
        events[events["item"] >= 0],
        "item",
        {
            "started": started[events["item"] >= 0],
            "completed": completed[events["item"] >= 0],
            "impressions": (kind == "impression")[events["item"] >= 0],
        },
    )
    out = []
    for day, part in examples.groupby("day", sort=True):
        u7, u30 = _window(user_daily, "user", day, 7), _window(user_daily, "user", day, 30)
        g30 = _window(genre_daily, "user", day, 30)
        i7, iall = _window(item_daily, "item", day, 7), _window(item_daily, "item", day, 10_000)
        users, items = part["user"].to_numpy(), part["item"].to_numpy()
        r7, r30, ri7, rall = u7.reindex(users), u30.reindex(users), i7.reindex(items), iall.reindex(items)
        vec = g30.reindex(users).fillna(0.0).to_numpy()
        total = vec.sum(1, keepdims=True)
        vec = np.where(total > 0, vec / np.where(total > 0, total, 1.0), 0.0)
        item_hot = hot[items]
        overlap = (vec * item_hot).sum(1) / (np.linalg.norm(vec, axis=1) * np.linalg.norm(item_hot, axis=1) + 1e-9)
        out.append(
            part.assign(
                user_total_watch_hours_7d=r7["watch"].fillna(0.0).to_numpy() / 3600.0,
                user_skip_rate_7d=(r7["skips"] / r7["ended"]).fillna(0.0).to_numpy(),
                user_content_completion_rate_30d=(r30["completed"] / r30["started"]).fillna(0.0).to_numpy(),
                user_genre_affinity_vector=list(vec),
                content_total_plays_7d=ri7["started"].fillna(0.0).to_numpy(),
                content_avg_completion_rate=(rall["completed"] / rall["started"]).fillna(0.0).to_numpy(),
                content_release_recency_days=(part["timestamp_ms"].to_numpy() - cat.release_ms[items]) / DAY_MS,
                content_play_to_impression_ratio=(rall["started"] / rall["impressions"]).fillna(0.0).to_numpy(),
                user_x_content_genre_overlap=overlap,
            )
        )
    return pd.concat(out, ignore_index=True)


def simulate_window(
    cfg: SimulatorConfig,
    *,
    first_day: int = 0,
    order: SlateOrder = "policy",
) -> SimulatedWindow:
    """The simulator's traffic over ``cfg.days`` days as a training window, with catalog and oracle.

    Args:
        cfg: The simulator configuration (world, behaviour; the delivery scenarios are not applied).
        first_day: Days before it are simulated for the features only (their impressions are not
            examples): a window whose first day already has feature history.
        order: How rows are ordered (:data:`flywheel.simulator.sessions.SlateOrder`).
    """
    from flywheel.features.training_set import label_impressions

    world = build_world(cfg)
    events = events_frame(world, simulated_events(world, order=order))
    durations = dict(zip(world.catalog.content_ids, world.catalog.duration_s.astype(float).tolist(), strict=True))
    examples = label_impressions(events, durations, LABEL_WINDOW_MS)
    meta = events.set_index("event_id").loc[examples["example_id"], ["user", "item", "day", "device_type"]]
    examples = pd.concat([examples.reset_index(drop=True), meta.reset_index(drop=True)], axis=1)
    examples = examples[examples["day"] >= first_day]
    frame = add_features(world, events, examples)
    frame = frame.rename(columns={f"label_{h}": h for h in ("click", "watch_50", "complete", "like", "add_to_list")})
    frame["event_timestamp"] = pd.to_datetime(frame["timestamp_ms"], unit="ms", utc=True)
    frame["position"] = frame["position"].astype(np.int32) + 1
    frame = frame.drop(columns=["example_id", "timestamp_ms", "user", "item", "day", "watch_fraction"])
    frame = frame.sort_values("event_timestamp", kind="stable").reset_index(drop=True)
    return SimulatedWindow(world=world, frame=frame, catalog=catalog_frame(world))


__all__ = [
    "SimulatedWindow",
    "catalog_frame",
    "ground_truth_of",
    "simulate_window",
    "simulated_events",
]
