"""How events travel from the clients to the log, with the faults of the scenarios.

Applied to each generated batch, in this order:

1. **Outage**: events that happen during the outage window are never delivered.
2. **Clock skew**: ``timestamp_ms`` = true time + the device's clock offset.
3. **Late events**: a share of the events reaches the log ``min..max_delay_seconds`` after it
   happened (its ``arrival_ms``); the log is written in arrival order, so a late event lands
   after events with later timestamps.
4. **Duplicates** (retry storms): a share of the events is delivered 1..``max_copies`` more
   times, each copy 0.2-3 s after the previous one, with the same id and bytes.
5. **Broken events**: a share of the records is damaged (one of
   :data:`flywheel.events.encoding.BROKEN_KINDS`, mixed evenly).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flywheel.config.simulator import ScenariosConfig
from flywheel.events.columns import EventColumns
from flywheel.events.encoding import BROKEN_KINDS


@dataclass
class DeliveryCounts:
    """What the faults did to a batch."""

    dropped_outage: int = 0
    late: int = 0
    duplicates: int = 0
    broken: int = 0
    skewed: int = 0

    def add(self, other: DeliveryCounts) -> None:
        """Accumulate another batch's counts."""
        self.dropped_outage += other.dropped_outage
        self.late += other.late
        self.duplicates += other.duplicates
        self.broken += other.broken
        self.skewed += other.skewed


def deliver(
    cols: EventColumns,
    rng: np.random.Generator,
    scenarios: ScenariosConfig,
    *,
    clock_skew_ms: np.ndarray,
    outage_ms: tuple[int, int] | None,
) -> tuple[EventColumns, DeliveryCounts]:
    """Apply the delivery scenarios to a batch.

    Args:
        cols: Generated events (with ids); not modified.
        rng: Random generator of the batch.
        scenarios: The scenario switches.
        clock_skew_ms: Clock offset per device.
        outage_ms: ``(start, end)`` of the outage, or None.

    Returns:
        The events as delivered (copies included, arrival times set) and the counts.
    """
    counts = DeliveryCounts()
    if outage_ms is not None:
        lost = (cols.true_ms >= outage_ms[0]) & (cols.true_ms < outage_ms[1])
        counts.dropped_outage = int(lost.sum())
        cols = cols.take(~lost)
    else:
        cols = cols.take(np.arange(len(cols)))
    n = len(cols)
    if scenarios.clock_skew.enabled:
        offset = clock_skew_ms[cols.device]
        cols.timestamp_ms = cols.true_ms + offset
        counts.skewed = int((offset != 0).sum())
    late = scenarios.late_events
    if late.enabled:
        chosen = rng.random(n) < late.rate
        delay = rng.uniform(late.min_delay_seconds, late.max_delay_seconds, n) * 1000
        cols.arrival_ms = np.where(chosen, cols.true_ms + delay.astype(np.int64), cols.true_ms)
        cols.late = chosen
        counts.late = int(chosen.sum())
    dup = scenarios.duplicates
    if dup.enabled and n:
        retried = rng.random(n) < dup.rate
        copies = np.where(retried, rng.integers(1, dup.max_copies + 1, n), 0)
        index = np.repeat(np.arange(n), 1 + copies)
        first = np.concatenate([[0], np.cumsum(1 + copies)[:-1]])
        rank = np.arange(len(index)) - first[index]
        backoff = np.cumsum(rng.uniform(200, 3000, len(index)))
        backoff -= backoff[first[index]]
        out = cols.take(index)
        out.arrival_ms = out.arrival_ms + backoff.astype(np.int64)
        out.duplicate = rank > 0
        counts.duplicates = int(copies.sum())
        cols = out
    broken = scenarios.broken_events
    if broken.enabled:
        chosen = rng.random(len(cols)) < broken.rate
        cols.broken = np.where(chosen, rng.integers(1, len(BROKEN_KINDS) + 1, len(cols)), 0).astype(np.int8)
        counts.broken = int(chosen.sum())
    return cols, counts
