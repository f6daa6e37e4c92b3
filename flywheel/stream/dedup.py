"""Deduplication by event_id within a bounded event-time horizon."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class DedupState:
    """The event ids seen recently in one partition of the stream.

    An id is remembered at least until the newest event time seen exceeds its event time by more
    than ``horizon_ms``: a repeat within the horizon is always caught. Ids are evicted in arrival
    order, so an id that arrived out of order may be kept a little longer, never shorter.
    """

    horizon_ms: int
    seen: set[str] = field(default_factory=set)
    queue: deque[tuple[int, str]] = field(default_factory=deque)
    max_ts_ms: int | None = None

    def __len__(self) -> int:
        return len(self.seen)


def observe(state: DedupState, event_id: str, ts_ms: int) -> bool:
    """Record one event; True when its id was already seen (a duplicate).

    Args:
        state: The partition's dedup state (updated in place).
        event_id: The event's id.
        ts_ms: The event's time, which moves the horizon.
    """
    if event_id in state.seen:
        return True
    state.seen.add(event_id)
    state.queue.append((ts_ms, event_id))
    if state.max_ts_ms is None or ts_ms > state.max_ts_ms:
        state.max_ts_ms = ts_ms
        horizon_start = ts_ms - state.horizon_ms
        queue, seen = state.queue, state.seen
        while queue and queue[0][0] < horizon_start:
            seen.discard(queue.popleft()[1])
    return False
