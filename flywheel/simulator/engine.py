"""The platform simulator: realistic, deterministic traffic of a streaming platform.

The world (:mod:`flywheel.simulator.world`) is a catalog (:mod:`flywheel.simulator.catalog`), a population
with latent tastes, households and devices (:mod:`flywheel.simulator.population`), the planted
experiments and the scenario settings. Traffic is generated day by day: each day's sessions
are planned (Poisson per user, diurnal start times, a device of the user's), sorted by start
and simulated in vectorised batches (:mod:`flywheel.simulator.sessions`); the delivery faults of
the scenarios are applied (:mod:`flywheel.simulator.delivery`) and the events are written in
arrival order as schema-v2 JSON (:mod:`flywheel.events.encoding`).

Everything is a function of the configuration: the same seed and settings give the same
bytes. The ground truth (:func:`export_ground_truth`) lets evaluation compare models with the
oracle :func:`true_affinity`.

Public API: :func:`simulate` writes to the event log; :func:`generate_batches` yields the
batches without writing (benchmarks, tests).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from flywheel.config.simulator import SimulatorConfig
from flywheel.events.columns import EVENT_TYPES, EventColumns
from flywheel.events.encoding import encode
from flywheel.events.log import EventLog, Message, open_event_log
from flywheel.simulator.catalog import DAY_MS
from flywheel.simulator.delivery import DeliveryCounts, deliver
from flywheel.simulator.ground_truth import GroundTruth, true_affinity
from flywheel.simulator.sessions import SessionBatch, simulate_sessions
from flywheel.simulator.world import UINT64_MAX, World, build_world, export_ground_truth, plan_day

if TYPE_CHECKING:
    from flywheel.config.models import FlywheelConfig

__all__ = [
    "EventBatch",
    "GroundTruth",
    "SimulationSummary",
    "World",
    "build_world",
    "export_ground_truth",
    "generate_batches",
    "plan_day",
    "simulate",
    "true_affinity",
]

MESSAGE_CHUNK = 4096
"""Messages per yielded batch (orjson gives every message a 4 KiB buffer: keep few alive)."""


def _slice(batch: SessionBatch, lo: int, hi: int) -> SessionBatch:
    return SessionBatch(**{name: getattr(batch, name)[lo:hi] for name in batch.__dataclass_fields__})


@dataclass
class EventBatch:
    """Messages ready for ``producer.send_many``, in arrival order, with what they contain."""

    messages: list[Message]
    by_type: Counter[str]
    """Valid events per type (broken records are counted in ``delivery.broken`` only)."""
    delivery: DeliveryCounts
    sessions: int
    simulated_ms: int
    """Simulated time reached: every event that arrived before it has been emitted."""
    max_timestamp_ms: int
    """Largest timestamp of a valid event in this batch (0 when none)."""


def generate_batches(cfg: SimulatorConfig, world: World | None = None) -> Iterator[EventBatch]:
    """Yield the simulated traffic batch by batch, in arrival order, without writing it.

    Args:
        cfg: The simulator configuration.
        world: A world already built from ``cfg`` (built here when None).
    """
    world = world or build_world(cfg)
    carry = EventColumns.empty()
    size = cfg.batch_sessions
    for day in range(cfg.days):
        plan = plan_day(world, day)
        count = len(plan.user)
        bounds = list(range(0, count, size)) or [0]
        for number, lo in enumerate(bounds):
            hi = min(lo + size, count)
            rng = np.random.default_rng([cfg.seed, 2, day, number])
            sessions = _slice(plan, lo, hi)
            generated = simulate_sessions(rng, sessions, world.catalog, cfg, genre_axes=world.genre_axes)
            generated.id_hi = rng.integers(0, UINT64_MAX, len(generated), dtype=np.uint64, endpoint=True)
            generated.id_lo = rng.integers(0, UINT64_MAX, len(generated), dtype=np.uint64, endpoint=True)
            delivered, counts = deliver(
                generated,
                rng,
                cfg.scenarios,
                clock_skew_ms=world.population.devices.clock_skew_ms,
                outage_ms=world.outage_ms,
            )
            pending = EventColumns.concat([carry, delivered])
            last = day == cfg.days - 1 and hi >= count
            boundary = int(plan.start_ms[hi]) if hi < count else world.start_ms + (day + 1) * DAY_MS
            order = np.argsort(pending.arrival_ms, kind="stable")
            ready = order if last else order[pending.arrival_ms[order] < boundary]
            carry = pending.take(order[len(ready) :]) if not last else EventColumns.empty()
            out = pending.take(ready)
            # encode in small chunks: each message holds a ~4 KiB buffer until written
            for first in range(0, max(len(out), 1), MESSAGE_CHUNK):
                chunk = out.take(np.arange(first, min(first + MESSAGE_CHUNK, len(out))))
                valid = chunk.broken == 0
                counts_by_type = np.bincount(chunk.event_type[valid], minlength=len(EVENT_TYPES))
                yield EventBatch(
                    messages=encode(chunk, world.vocabulary, rng),
                    by_type=Counter({EVENT_TYPES[t]: int(c) for t, c in enumerate(counts_by_type) if c}),
                    delivery=counts if first == 0 else DeliveryCounts(),
                    sessions=hi - lo if first == 0 else 0,
                    simulated_ms=max(boundary, world.start_ms),
                    max_timestamp_ms=int(chunk.timestamp_ms[valid].max()) if valid.any() else 0,
                )


@dataclass
class SimulationSummary:
    """What a simulation wrote."""

    topic: str
    events_written: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    delivery: DeliveryCounts = field(default_factory=DeliveryCounts)
    sessions: int = 0
    users: int = 0
    bots: int = 0
    items_initial: int = 0
    items_total: int = 0
    days: int = 0
    start_ms: int = 0
    end_ms: int = 0
    """The simulated clock at the end: validate the events with ``now_ms=end_ms``."""
    seconds: float = 0.0
    """Wall time of generating and writing the events (the world and ground truth excluded)."""
    ground_truth: Path | None = None

    @property
    def events_per_second(self) -> float:
        """Records written per second of wall time."""
        return self.events_written / self.seconds if self.seconds > 0 else 0.0


ProgressCallback = Callable[[int, int, int], None]
"""Called after each batch with (simulated ms done, simulated ms total, records written)."""


def simulate(
    config: FlywheelConfig,
    *,
    log: EventLog | None = None,
    progress: ProgressCallback | None = None,
    ground_truth: bool = True,
) -> SimulationSummary:
    """Simulate the configured traffic and write it to the ``events`` topic.

    Args:
        config: The Flywheel configuration (``simulator`` and ``event_log`` sections).
        log: The event log to write to; opened from the configuration (and closed) when None.
        progress: Called after each batch (see :data:`ProgressCallback`).
        ground_truth: Write the ground truth to ``simulator.ground_truth_dir``.

    Returns:
        The counts of what was written.
    """
    cfg = config.simulator
    world = build_world(cfg)
    topic = config.event_log.topics.events
    summary = SimulationSummary(
        topic=topic,
        users=int((~world.population.is_bot).sum()),
        bots=int(world.population.is_bot.sum()),
        items_initial=world.catalog.initial_count,
        items_total=len(world.catalog),
        days=cfg.days,
        start_ms=world.start_ms,
        end_ms=world.end_ms,
    )
    if ground_truth:
        summary.ground_truth = export_ground_truth(world, cfg.ground_truth_dir).parent
    began = time.perf_counter()
    own_log = log is None
    event_log = open_event_log(config.event_log) if log is None else log
    try:
        producer = event_log.producer(topic)
        total = world.end_ms - world.start_ms
        for batch in generate_batches(cfg, world):
            summary.events_written += producer.send_many(batch.messages)
            summary.by_type.update(batch.by_type)
            summary.delivery.add(batch.delivery)
            summary.sessions += batch.sessions
            summary.end_ms = max(summary.end_ms, batch.max_timestamp_ms)
            if progress is not None:
                progress(min(batch.simulated_ms - world.start_ms, total), total, summary.events_written)
        producer.flush()
    finally:
        if own_log:
            event_log.close()
    summary.seconds = time.perf_counter() - began
    return summary
