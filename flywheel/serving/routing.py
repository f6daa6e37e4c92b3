"""Canary routing: which variant answers a user during a rollout (a pure rule).

The assignment reuses the experiments library's bucket rule
(:func:`flywheel.experiments.assignment.bucket_of`): a user's bucket is
``floor(SHA-256("<rollout id>:<user id>") * BUCKETS)``, and the user is in the canary when the
bucket is below ``fraction * BUCKETS``. The bucket does not depend on the fraction, so a user in
the canary at fraction ``f`` stays in it at every ``f' > f`` (a monotone ramp), and a new rollout
id draws a fresh, independent split.
"""

from __future__ import annotations

from typing import Literal

from flywheel.experiments.assignment import bucket_of
from flywheel.experiments.config import BUCKETS

Variant = Literal["champion", "canary"]


def canary_buckets(fraction: float) -> int:
    """Buckets (of :data:`BUCKETS`) in the canary at ``fraction`` (0..1, rounded to 0.01 %).

    Raises:
        ValueError: ``fraction`` lies outside [0, 1].
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"canary fraction must lie in [0, 1], got {fraction}")
    return round(fraction * BUCKETS)


def assign_variant(user_id: str, rollout_id: str, fraction: float) -> Variant:
    """The variant that answers ``user_id`` while rollout ``rollout_id`` runs at ``fraction``.

    Args:
        user_id: The user (the randomization unit).
        rollout_id: The rollout; it salts the hash, so each rollout splits users afresh.
        fraction: Share of users on the canary, 0..1.

    Returns:
        ``"canary"`` or ``"champion"``; deterministic, and monotone in ``fraction``.
    """
    return "canary" if bucket_of(user_id, rollout_id) < canary_buckets(fraction) else "champion"
