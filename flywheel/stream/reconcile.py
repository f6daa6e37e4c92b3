"""The accounting of a run: every event read is processed, dead-lettered, late or a duplicate."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Counts:
    """Where the events read went. ``received == processed + dlq + late + duplicates``."""

    received: int = 0
    """Records read from the events topic."""
    processed: int = 0
    """Valid, new, not-too-late events folded into the features."""
    dlq: dict[str, int] = field(default_factory=dict)
    """Records sent to the dead-letter topic, by the code of their first rejection."""
    late: int = 0
    """Events behind their user's watermark, sent to the late topic."""
    duplicates: int = 0
    """Repeated event ids within the dedup horizon."""
    late_allowed: int = 0
    """Of the processed events, those that were behind the newest time but within the lateness."""

    @property
    def dlq_total(self) -> int:
        """All dead-lettered records."""
        return sum(self.dlq.values())

    @property
    def accounted(self) -> int:
        """``processed + dlq + late + duplicates``."""
        return self.processed + self.dlq_total + self.late + self.duplicates

    @property
    def balanced(self) -> bool:
        """True when every record read is accounted for exactly once."""
        return self.received == self.accounted

    def add_dlq(self, code: str) -> None:
        """Count one dead-lettered record."""
        self.dlq[code] = self.dlq.get(code, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary, with the balance check."""
        return {
            "received": self.received,
            "processed": self.processed,
            "dlq": self.dlq_total,
            "dlq_by_code": dict(sorted(self.dlq.items())),
            "late": self.late,
            "duplicates": self.duplicates,
            "late_allowed": self.late_allowed,
            "balanced": self.balanced,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Counts:
        """The inverse of :meth:`to_dict`."""
        return cls(
            received=int(data["received"]),
            processed=int(data["processed"]),
            dlq={str(k): int(v) for k, v in data.get("dlq_by_code", {}).items()},
            late=int(data["late"]),
            duplicates=int(data["duplicates"]),
            late_allowed=int(data.get("late_allowed", 0)),
        )


def merge_counts(parts: Iterable[Counts]) -> Counts:
    """Sum the counts of several partitions."""
    out = Counts()
    for part in parts:
        out.received += part.received
        out.processed += part.processed
        out.late += part.late
        out.duplicates += part.duplicates
        out.late_allowed += part.late_allowed
        for code, n in part.dlq.items():
            out.dlq[code] = out.dlq.get(code, 0) + n
    return out


def since(after: Counts, before: Counts) -> Counts:
    """What was counted between two readings of the same counts (e.g. by one run after a restart)."""
    return Counts(
        received=after.received - before.received,
        processed=after.processed - before.processed,
        dlq={code: n - before.dlq.get(code, 0) for code, n in after.dlq.items() if n != before.dlq.get(code, 0)},
        late=after.late - before.late,
        duplicates=after.duplicates - before.duplicates,
        late_allowed=after.late_allowed - before.late_allowed,
    )


def describe_run(run: Counts, total: Counts) -> str:
    """Two lines for people: what this run read, then the totals since the first run."""
    return (
        f"this run read {run.received} record(s): processed {run.processed}, dlq {run.dlq_total}, "
        f"late {run.late}, duplicates {run.duplicates}\ntotals since the first run: {describe(total)}"
    )


def describe(counts: Counts) -> str:
    """One line for people: the equation with its numbers."""
    verdict = "balanced" if counts.balanced else f"UNBALANCED by {counts.received - counts.accounted}"
    by_code = ", ".join(f"{code} {n}" for code, n in sorted(counts.dlq.items())) or "none"
    return (
        f"in {counts.received} = processed {counts.processed} + dlq {counts.dlq_total} "
        f"+ late {counts.late} + duplicates {counts.duplicates} ({verdict}); dlq by code: {by_code}"
    )
