"""Routing rules of the model server: sticky canary assignment, the rollout schedule, rollout state.

The canary is assigned with the experiments library's bucket rule
(:func:`flywheel.experiments.assignment.bucket_of`, salted with the rollout id): a user's bucket is
``floor(SHA-256("<rollout id>:<user id>") * BUCKETS)``, fixed for a rollout, and the user is in the
canary while the bucket is below ``fraction * BUCKETS``. Raising the fraction therefore only adds
users: a user in the canary at fraction f stays in it at every f' > f (a monotone ramp), and a new
rollout id draws a fresh, independent split.

The live rollout is stored as registered-model tags in MLflow (``rollout.id``, ``rollout.fraction``,
``rollout.stage``, ``rollout.status``), read by :func:`rollout_from_tags`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from flywheel.experiments.assignment import bucket_of
from flywheel.experiments.config import BUCKETS

Variant = Literal["champion", "canary", "shadow"]
RolloutStatus = Literal["running", "promoted", "rolled_back", "none"]
STATUSES: tuple[RolloutStatus, ...] = ("running", "promoted", "rolled_back", "none")

TAG_ID = "rollout.id"
TAG_FRACTION = "rollout.fraction"
TAG_STAGE = "rollout.stage"
TAG_STATUS = "rollout.status"


def canary_buckets(fraction: float) -> int:
    """Buckets (of :data:`BUCKETS`) in the canary at ``fraction`` (0..1, rounded to one bucket).

    Raises:
        ValueError: ``fraction`` lies outside [0, 1].
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"canary fraction must lie in [0, 1], got {fraction}")
    return round(fraction * BUCKETS)


def assign_variant(user_id: str, rollout_id: str | None, fraction: float) -> Literal["champion", "canary"]:
    """The variant that answers ``user_id``: ``canary`` when its hash under the rollout is below ``fraction``.

    Args:
        user_id: The user (the randomization unit).
        rollout_id: The live rollout (the hash salt); None means no rollout: everyone gets the champion.
        fraction: Share of users on the canary, 0..1.

    Raises:
        ValueError: ``fraction`` lies outside [0, 1].
    """
    if rollout_id is None:
        return "champion"
    return "canary" if bucket_of(user_id, rollout_id) < canary_buckets(fraction) else "champion"


def fraction_at(schedule: Sequence[float], stage: int) -> float:
    """The canary fraction of rollout ``stage`` (0-based; stages past the end stay at the last fraction).

    Raises:
        ValueError: The schedule is empty or the stage negative.
    """
    if not schedule:
        raise ValueError("the rollout schedule is empty")
    if stage < 0:
        raise ValueError(f"rollout stage must be >= 0, got {stage}")
    return float(schedule[min(stage, len(schedule) - 1)])


def next_stage(schedule: Sequence[float], stage: int) -> int | None:
    """The stage after ``stage``, or None when ``stage`` is the last one (the next step is promotion)."""
    return stage + 1 if stage + 1 < len(schedule) else None


@dataclass(frozen=True, slots=True)
class RolloutState:
    """The live rollout as the registry's tags describe it."""

    rollout_id: str | None
    fraction: float
    stage: int
    status: RolloutStatus

    @property
    def live_id(self) -> str | None:
        """The rollout id an answer carries: the rollout's while it runs, None otherwise.

        The evidence of a rollout is the answers that carry its id, so an answer served before
        the rollout runs or after it ends (everyone on the champion) must not carry it.
        """
        return self.rollout_id if self.status == "running" else None

    @property
    def canary_fraction(self) -> float:
        """The fraction of users the canary answers now (0 unless the rollout is running)."""
        return self.fraction if self.live_id else 0.0


NO_ROLLOUT = RolloutState(None, 0.0, 0, "none")


def rollout_from_tags(tags: Mapping[str, str]) -> RolloutState:
    """Parse the registered model's rollout tags; missing or malformed tags mean no running rollout.

    A malformed tag never raises (the server must keep serving the champion): the state falls back
    to ``none`` with fraction 0.
    """
    status = tags.get(TAG_STATUS, "none")
    rollout_id = tags.get(TAG_ID) or None
    try:
        fraction = float(tags.get(TAG_FRACTION, "0"))
        stage = int(tags.get(TAG_STAGE, "0"))
    except ValueError:
        return NO_ROLLOUT
    if status not in STATUSES or not 0 <= fraction <= 1 or stage < 0:
        return NO_ROLLOUT
    return RolloutState(rollout_id, fraction, stage, status)
