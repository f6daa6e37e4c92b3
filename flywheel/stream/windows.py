"""Exact sliding-window sums on event time, for the real-time counters (plays in the last hour)."""

from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import dataclass, field


@dataclass
class SlidingSum:
    """Values stamped with event times, kept long enough to sum any recent window exactly."""

    stamps: list[tuple[int, float]] = field(default_factory=list)
    """(event time, value), sorted by time."""

    def add(self, ts_ms: int, value: float = 1.0) -> None:
        """Record ``value`` at ``ts_ms`` (in any order)."""
        if not self.stamps or ts_ms >= self.stamps[-1][0]:
            self.stamps.append((ts_ms, value))
        else:
            insort(self.stamps, (ts_ms, value))

    def total(self, as_of_ms: int, window_ms: int) -> float:
        """Sum of the values stamped in ``[as_of_ms - window_ms, as_of_ms)``."""
        lo = bisect_left(self.stamps, (as_of_ms - window_ms, float("-inf")))
        hi = bisect_left(self.stamps, (as_of_ms, float("-inf")))
        return sum(v for _, v in self.stamps[lo:hi])

    def prune(self, before_ms: int) -> None:
        """Forget values stamped before ``before_ms``."""
        if self.stamps and self.stamps[0][0] < before_ms:
            del self.stamps[: bisect_left(self.stamps, (before_ms, float("-inf")))]

    def __len__(self) -> int:
        return len(self.stamps)
