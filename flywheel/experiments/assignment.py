"""Deterministic assignment of units to experiments and variants by SHA-256 bucketing.

Three independent hashes, each ``SHA-256("<salt>:<unit id>")`` read as a number in [0, 1)
(its first 8 bytes, big-endian, over 2**64):

1. the global holdout, salted with the holdout salt: a unit below ``percent`` is in no
   experiment of any layer;
2. the layer bucket, salted with the layer salt: ``floor(u * BUCKETS)`` picks at most one
   experiment of the layer (the one whose ``[offset, offset + allocation)`` holds it);
3. the variant, salted with the experiment id: ``u`` is mapped through the cumulative variant
   weights. This is the contract the simulator and the serving router share.

Because the variant does not depend on the bucket, raising an experiment's allocation adds
units without moving any unit that was already in it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import accumulate
from typing import Literal

from flywheel.experiments.config import (
    BUCKETS,
    ExperimentRegistry,
    ExperimentSpec,
    HoldoutSpec,
)

Reason = Literal["assigned", "holdout", "unallocated", "paused"]


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where one unit lands in one layer."""

    unit_id: str
    layer: str
    bucket: int
    """The unit's bucket in the layer, 0..BUCKETS-1."""
    experiment_id: str | None
    """The experiment whose range holds the bucket (None outside every range or in the holdout)."""
    variant: str | None
    """The unit's variant (None unless ``reason`` is ``assigned``)."""
    reason: Reason
    """``assigned``, ``holdout`` (global holdout), ``unallocated`` (no range) or ``paused``."""


def unit_hash(unit_id: str, salt: str) -> float:
    """``SHA-256("<salt>:<unit_id>")`` as a uniform number in [0, 1)."""
    digest = hashlib.sha256(f"{salt}:{unit_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def bucket_of(unit_id: str, salt: str) -> int:
    """The unit's bucket (0..BUCKETS-1) in a layer salted with ``salt``."""
    return min(int(unit_hash(unit_id, salt) * BUCKETS), BUCKETS - 1)


def in_holdout(unit_id: str, holdout: HoldoutSpec) -> bool:
    """Whether the unit is in the global holdout."""
    return holdout.percent > 0 and unit_hash(unit_id, holdout.salt) * 100.0 < holdout.percent


def variant_of(unit_id: str, experiment: ExperimentSpec) -> str:
    """The unit's variant in ``experiment`` (ignores the layer: callers check membership)."""
    u = unit_hash(unit_id, experiment.id)
    weights = experiment.weights
    for name, edge in zip(weights, accumulate(weights.values()), strict=True):
        if u < edge:
            return name
    return experiment.variants[-1].name  # u within float rounding of 1


def assign(
    unit_id: str,
    registry: ExperimentRegistry,
    layer: str,
    *,
    paused: Iterable[str] = (),
) -> Assignment:
    """Assign one unit in one layer.

    Args:
        unit_id: The randomization unit (a user id).
        registry: The validated layers and experiments.
        layer: The layer to assign in.
        paused: Experiment ids paused at run time (on top of those marked ``paused``).

    Returns:
        The assignment; ``variant`` is None unless the unit is in a running experiment.

    Raises:
        KeyError: The layer is unknown.
    """
    spec = registry.layer(layer)
    bucket = bucket_of(unit_id, spec.hash_salt)
    if in_holdout(unit_id, registry.holdout):
        return Assignment(unit_id, layer, bucket, None, None, "holdout")
    stopped = set(paused)
    for exp in registry.experiments:
        start, end = exp.bucket_range
        if exp.layer == layer and start <= bucket < end:
            if exp.paused or exp.id in stopped:
                return Assignment(unit_id, layer, bucket, exp.id, None, "paused")
            return Assignment(unit_id, layer, bucket, exp.id, variant_of(unit_id, exp), "assigned")
    return Assignment(unit_id, layer, bucket, None, None, "unallocated")


def assign_all(unit_id: str, registry: ExperimentRegistry, *, paused: Iterable[str] = ()) -> dict[str, Assignment]:
    """Assign one unit in every layer that has an experiment (layer name -> assignment)."""
    stopped = frozenset(paused)
    layers = dict.fromkeys(e.layer for e in registry.experiments)
    return {name: assign(unit_id, registry, name, paused=stopped) for name in layers}
