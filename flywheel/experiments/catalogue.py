"""The metrics an experiment may name: pure definitions, no computation.

Three kinds of per-unit metric are supported, each with its own test:

- ``mean``: a number per unit (watch hours, sessions); Welch's t-test, CUPED, winsorization.
- ``ratio``: a sum over a sum (clicks / impressions); each unit's pair is linearized (the delta
  method), then analysed like a mean, CUPED included.
- ``proportion``: 0 or 1 per unit (active on day N after exposure); difference of proportions.

``day<N>_active`` exists for every N >= 0 (day 0 is the day of the unit's first exposure).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

MetricKind = Literal["mean", "ratio", "proportion"]
_DAY_N = re.compile(r"^day(\d{1,3})_active$")


@dataclass(frozen=True, slots=True)
class MetricDefinition:
    """One metric of the catalogue."""

    name: str
    kind: MetricKind
    description: str
    higher_is_better: bool = True
    numerator: str | None = None
    """For ratio metrics: the per-unit column summed on top."""
    denominator: str | None = None
    """For ratio metrics: the per-unit column summed below."""
    day: int | None = None
    """For ``day<N>_active``: N."""


_FIXED: dict[str, MetricDefinition] = {
    m.name: m
    for m in (
        MetricDefinition("ctr", "ratio", "clicks per impression", numerator="clicks", denominator="impressions"),
        MetricDefinition("clicks", "mean", "clicks per unit"),
        MetricDefinition("impressions", "mean", "impressions per unit"),
        MetricDefinition("watch_hours", "mean", "hours watched per unit"),
        MetricDefinition(
            "watch_hours_per_impression",
            "ratio",
            "hours watched per impression",
            numerator="watch_hours",
            denominator="impressions",
        ),
        MetricDefinition("sessions", "mean", "distinct sessions per unit"),
        MetricDefinition("active_days", "mean", "distinct UTC days with an event per unit"),
    )
}


def metric_names() -> list[str]:
    """Names of the fixed metrics (plus the ``day<N>_active`` family)."""
    return [*_FIXED, "day<N>_active"]


def resolve_metric(name: str) -> MetricDefinition:
    """The definition of a metric name.

    Raises:
        KeyError: The name is not in the catalogue; the message lists the known names.
    """
    if name in _FIXED:
        return _FIXED[name]
    match = _DAY_N.match(name)
    if match:
        day = int(match.group(1))
        return MetricDefinition(name, "proportion", f"share of units active on day {day} after exposure", day=day)
    raise KeyError(f"unknown metric {name!r} (known: {', '.join(metric_names())})")


def is_known_metric(name: str) -> bool:
    """Whether ``name`` is a metric of the catalogue."""
    try:
        resolve_metric(name)
    except KeyError:
        return False
    return True
