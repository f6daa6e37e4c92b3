"""The simulated world: catalog, population, tastes, experiments, and each day's sessions.

:func:`build_world` fixes everything before the first event (a pure function of the
configuration); :func:`plan_day` draws one day's sessions (Poisson per user, diurnal start
times, one of the user's devices, the experiment arm and the taste in force at the start);
:func:`export_ground_truth` writes what the world knows for evaluation against the oracle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any

import numpy as np

from flywheel.config.simulator import SimulatorConfig
from flywheel.events.encoding import Vocabulary
from flywheel.simulator.catalog import CONTENT_TYPES, DAY_MS, GENRES, Catalog, build_catalog, genre_directions
from flywheel.simulator.ground_truth import write_ground_truth
from flywheel.simulator.population import (
    COUNTRIES,
    DEVICE_TYPES,
    TIERS,
    Population,
    assign_variant,
    build_population,
    drifted_tastes,
)
from flywheel.simulator.sessions import QUERIES, SessionBatch, genre_axes

#: Relative share of session starts per hour of the day (UTC): low at night, peak at 20:00.
HOUR_WEIGHTS = np.array(
    [0.3, 0.2, 0.15, 0.1, 0.1, 0.15, 0.3, 0.5, 0.6, 0.6, 0.6, 0.7]
    + [0.8, 0.8, 0.8, 0.9, 1.0, 1.2, 1.5, 1.9, 2.2, 2.0, 1.5, 0.8]
)
UINT64_MAX = np.iinfo(np.uint64).max


@dataclass(frozen=True)
class PlantedExperiment:
    """An experiment as the simulator applies it."""

    id: str
    start_ms: int
    variants: tuple[str, ...]
    click_multiplier: np.ndarray
    """1 + click lift, per variant."""
    watch_multiplier: np.ndarray
    assignment: np.ndarray
    """Variant index of every user."""


@dataclass(frozen=True)
class World:
    """Everything fixed before the first event: catalog, population, tastes, experiments."""

    cfg: SimulatorConfig
    start_ms: int
    """Midnight UTC of the first simulated day."""
    end_ms: int
    """Midnight UTC after the last simulated day (sessions begun before it may run past it)."""
    catalog: Catalog
    population: Population
    directions: np.ndarray
    genre_axes: np.ndarray
    """How users perceive genres (mean title vector per genre), for search queries."""
    taste_drifted: np.ndarray
    """Tastes in force from ``drift_at_ms`` on (equal to the population's when no drift)."""
    drifted: np.ndarray
    """Users whose taste drifts."""
    drift_at_ms: int | None
    experiments: tuple[PlantedExperiment, ...]
    outage_ms: tuple[int, int] | None
    """[start, end) of the outage, None when off."""
    vocabulary: Vocabulary
    """Strings the encoder needs (ids, device objects, variant names, queries)."""


def _day_ms(cfg: SimulatorConfig, days: float) -> int:
    start = datetime.combine(cfg.start_date, dtime(0), tzinfo=UTC)
    return int(start.timestamp() * 1000) + int(round(days * DAY_MS))


def build_world(cfg: SimulatorConfig) -> World:
    """Generate the catalog, the population, the drifted tastes and the experiment assignment.

    Raises:
        ValueError: The configuration names an unknown genre.
    """
    rng = np.random.default_rng([cfg.seed, 0])
    start_ms, end_ms = _day_ms(cfg, 0), _day_ms(cfg, cfg.days)
    sc = cfg.scenarios
    directions = genre_directions(rng, cfg.taste_dimensions)
    catalog = build_catalog(
        rng,
        initial=cfg.items,
        new_per_day=cfg.new_items_per_day,
        days=cfg.days,
        start_ms=start_ms,
        directions=directions,
    )
    bots = int(round(cfg.users * sc.bots.users_fraction)) if sc.bots.enabled else 0
    population = build_population(
        rng,
        users=cfg.users,
        days=cfg.days,
        start_ms=start_ms,
        directions=directions,
        taste_scale=cfg.taste_scale,
        bots=bots,
        bot_rng=np.random.default_rng([cfg.seed, 0, 1]),
        skewed_devices_fraction=sc.clock_skew.devices_fraction if sc.clock_skew.enabled else 0.0,
        max_skew_ms=int(sc.clock_skew.max_skew_seconds * 1000) if sc.clock_skew.enabled else 0,
        skew_rng=np.random.default_rng([cfg.seed, 0, 2]),
        shift_device_type=sc.device_shift.to_device if sc.device_shift.enabled else None,
        shift_at_ms=_day_ms(cfg, sc.device_shift.at_day),
        shift_rng=np.random.default_rng([cfg.seed, 0, 3]),
    )
    drift = sc.taste_drift
    if drift.enabled:
        taste_drifted, drifted = drifted_tastes(
            np.random.default_rng([cfg.seed, 0, 4]),
            population.taste,
            directions,
            users_fraction=drift.users_fraction,
            toward=drift.toward_genres,
            strength=drift.strength,
            taste_scale=population.taste_scale,
        )
        drifted &= ~population.is_bot
        taste_drifted[population.is_bot] = population.taste[population.is_bot]
    else:
        taste_drifted, drifted = population.taste, np.zeros(len(population), dtype=bool)
    experiments = tuple(
        PlantedExperiment(
            id=e.id,
            start_ms=_day_ms(cfg, e.start),
            variants=tuple(e.variants),
            click_multiplier=np.array([1.0 + e.click_lift.get(v, 0.0) for v in e.variants]),
            watch_multiplier=np.array([1.0 + e.watch_lift.get(v, 0.0) for v in e.variants]),
            assignment=np.array(
                [list(e.variants).index(assign_variant(e.id, u, e.variants)) for u in population.user_ids]
            ),
        )
        for e in cfg.experiments
    )
    devices = population.devices
    household_ids = population.household_ids
    vocabulary = Vocabulary(
        user_ids=population.user_ids,
        content_ids=catalog.content_ids,
        devices=[
            {"type": DEVICE_TYPES[t], "os": o, "app_version": v, "device_id": d, "household_id": household_ids[h]}
            for t, o, v, d, h in zip(
                devices.device_type.tolist(),
                devices.os,
                devices.app_version,
                devices.device_ids,
                devices.household.tolist(),
                strict=True,
            )
        ],
        experiment_ids=[e.id for e in experiments],
        variant_names=[e.variants for e in experiments],
        queries=QUERIES,
    )
    outage = sc.outage
    return World(
        cfg=cfg,
        start_ms=start_ms,
        end_ms=end_ms,
        catalog=catalog,
        population=population,
        directions=directions,
        genre_axes=genre_axes(catalog),
        taste_drifted=taste_drifted,
        drifted=drifted,
        drift_at_ms=_day_ms(cfg, drift.at_day) if drift.enabled else None,
        experiments=experiments,
        outage_ms=(_day_ms(cfg, outage.at_day), _day_ms(cfg, outage.at_day) + int(outage.hours * 3_600_000))
        if outage.enabled
        else None,
        vocabulary=vocabulary,
    )


def plan_day(world: World, day: int) -> SessionBatch:
    """The sessions of one simulated day, sorted by start time."""
    cfg, pop = world.cfg, world.population
    rng = np.random.default_rng([cfg.seed, 1, day])
    day_start = world.start_ms + day * DAY_MS
    rate = cfg.sessions_per_user_day * pop.activity
    rate = np.where(pop.is_bot, rate * cfg.scenarios.bots.activity_multiplier, rate)
    counts = rng.poisson(rate)
    user = np.repeat(np.arange(len(pop)), counts)
    hour = rng.choice(24, len(user), p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    start = day_start + hour * 3_600_000 + rng.integers(0, 3_600_000, len(user))
    owned = pop.device_offsets[user + 1] - pop.device_offsets[user]
    device = pop.device_list[pop.device_offsets[user] + np.floor(rng.random(len(user)) * owned).astype(np.int64)]
    shift = cfg.scenarios.device_shift
    moved = rng.random(len(user)) < shift.sessions_fraction
    if shift.enabled:
        moved &= start >= _day_ms(cfg, shift.at_day)
        device = np.where(moved, pop.shift_device[user], device)
    key = rng.integers(0, UINT64_MAX, len(user), dtype=np.uint64, endpoint=True)
    keep = start >= pop.signup_ms[user]
    order = np.flatnonzero(keep)[np.argsort(start[keep], kind="stable")]
    user, start, device, key = user[order], start[order], device[order], key[order]

    taste = pop.taste[user]
    if world.drift_at_ms is not None:
        after = start >= world.drift_at_ms
        taste = np.where(after[:, None], world.taste_drifted[user], taste)
    experiment = np.full(len(user), -1, dtype=np.int16)
    variant = np.full(len(user), -1, dtype=np.int16)
    click = np.ones(len(user))
    watch = np.ones(len(user))
    for e_index, exp in enumerate(world.experiments):
        active = start >= exp.start_ms
        arm = exp.assignment[user]
        first = active & (experiment < 0)
        experiment[first] = e_index
        variant[first] = arm[first]
        click = np.where(active, click * exp.click_multiplier[arm], click)
        watch = np.where(active, watch * exp.watch_multiplier[arm], watch)
    return SessionBatch(
        user=user,
        start_ms=start,
        device=device,
        key=key,
        taste=taste,
        bot=pop.is_bot[user],
        experiment=experiment,
        variant=variant,
        click_multiplier=click,
        watch_multiplier=watch,
    )


def export_ground_truth(world: World, folder: str | Path) -> Path:
    """Write the world's ground truth (see :mod:`flywheel.simulator.ground_truth`); returns the manifest path."""
    cat, pop, dev = world.catalog, world.population, world.population.devices
    genre_lists = [
        [GENRES[p]] + ([GENRES[s]] if s >= 0 else [])
        for p, s in zip(cat.primary_genre.tolist(), cat.secondary_genre.tolist(), strict=True)
    ]
    user_devices = [
        pop.device_list[pop.device_offsets[u] : pop.device_offsets[u + 1]].tolist()
        + ([int(pop.shift_device[u])] if pop.shift_device[u] >= 0 else [])
        for u in range(len(pop))
    ]
    assignments: dict[str, list[Any]] = {"user_id": [], "experiment_id": [], "variant": [], "start_ts": []}
    for exp in world.experiments:
        assignments["user_id"] += pop.user_ids
        assignments["experiment_id"] += [exp.id] * len(pop)
        assignments["variant"] += [exp.variants[v] for v in exp.assignment.tolist()]
        assignments["start_ts"] += [exp.start_ms] * len(pop)
    tables: dict[str, dict[str, Any]] = {
        "catalog": {
            "content_id": cat.content_ids,
            "title": cat.titles,
            "content_type": [CONTENT_TYPES[t] for t in cat.content_type.tolist()],
            "genres": genre_lists,
            "primary_genre": [GENRES[g] for g in cat.primary_genre.tolist()],
            "creator_id": [cat.creator_ids[c] for c in cat.creator.tolist()],
            "duration_seconds": cat.duration_s,
            "release_ts": cat.release_ms,
            "arrival_ts": cat.arrival_ms,
            "synopsis": cat.synopses,
            "is_new": np.arange(len(cat)) >= cat.initial_count,
            "bias": cat.bias,
        },
        "users": {
            "user_id": pop.user_ids,
            "tier": [TIERS[t] for t in pop.tier.tolist()],
            "signup_ts": pop.signup_ms,
            "household_id": [pop.household_ids[h] for h in pop.household.tolist()],
            "device_ids": [[dev.device_ids[d] for d in ds] for ds in user_devices],
            "device_types": [[DEVICE_TYPES[dev.device_type[d]] for d in ds] for ds in user_devices],
            "home_country": [COUNTRIES[pop.country[h]] for h in pop.household.tolist()],
            "is_bot": pop.is_bot,
            "drifted": world.drifted,
        },
        "devices": {
            "device_id": dev.device_ids,
            "device_type": [DEVICE_TYPES[t] for t in dev.device_type.tolist()],
            "os": dev.os,
            "app_version": dev.app_version,
            "household_id": [pop.household_ids[h] for h in dev.household.tolist()],
            "clock_skew_ms": dev.clock_skew_ms,
            "introduced_ts": dev.introduced_ms,
        },
        "assignments": assignments,
    }
    arrays = {
        "item_vectors": cat.vectors,
        "item_bias": cat.bias,
        "user_taste": pop.taste,
        "user_taste_drifted": world.taste_drifted,
    }
    cfg = world.cfg
    manifest = {
        "seed": cfg.seed,
        "start_ms": world.start_ms,
        "end_ms": world.end_ms,
        "days": cfg.days,
        "drift_at_ms": world.drift_at_ms,
        "drift_toward": dict(cfg.scenarios.taste_drift.toward_genres) if world.drift_at_ms is not None else None,
        "outage_ms": list(world.outage_ms) if world.outage_ms else None,
        "genres": list(GENRES),
        "content_types": list(CONTENT_TYPES),
        "users": int((~pop.is_bot).sum()),
        "bots": int(pop.is_bot.sum()),
        "items": len(cat),
        "items_initial": cat.initial_count,
        "experiments": [
            {
                "id": e.id,
                "start_ms": e.start_ms,
                "variants": dict(c.variants),
                "click_lift": dict(c.click_lift),
                "watch_lift": dict(c.watch_lift),
            }
            for e, c in zip(world.experiments, cfg.experiments, strict=True)
        ],
        "config": cfg.model_dump(mode="json"),
    }
    return write_ground_truth(folder, tables=tables, arrays=arrays, manifest=manifest)
