"""Canary assignment: deterministic, monotone in the fraction, salted by the rollout id."""

from __future__ import annotations

import pytest

from flywheel.experiments.assignment import bucket_of
from flywheel.serving.routing import assign_variant, canary_buckets

USERS = [f"u{i:06d}" for i in range(20_000)]


def canary(rollout_id: str, fraction: float) -> set[str]:
    return {u for u in USERS if assign_variant(u, rollout_id, fraction) == "canary"}


def test_the_canary_share_follows_the_fraction() -> None:
    for fraction in (0.05, 0.25, 0.5):
        share = len(canary("r1", fraction)) / len(USERS)
        assert abs(share - fraction) < 0.01, (fraction, share)


def test_a_canary_user_stays_in_the_canary_as_the_fraction_rises() -> None:
    at_5, at_25, at_50 = canary("r1", 0.05), canary("r1", 0.25), canary("r1", 0.5)
    assert at_5 < at_25 < at_50


def test_the_assignment_is_the_experiments_bucket_rule() -> None:
    # bucket 1234 of 10,000 is in the canary from 12.35 % on, not at 12.34 %
    user = next(u for u in USERS if bucket_of(u, "r1") == 1234)
    assert assign_variant(user, "r1", 0.1234) == "champion"
    assert assign_variant(user, "r1", 0.1235) == "canary"


def test_each_rollout_draws_its_own_split() -> None:
    first, second = canary("r1", 0.25), canary("r2", 0.25)
    overlap = len(first & second) / len(first)
    assert abs(overlap - 0.25) < 0.03  # independent halves overlap by the fraction itself


def test_the_ends_of_the_range_and_bad_fractions() -> None:
    assert canary("r1", 0.0) == set()
    assert canary("r1", 1.0) == set(USERS)
    assert canary_buckets(0.05) == 500
    with pytest.raises(ValueError, match="must lie in"):
        assign_variant("u1", "r1", 1.5)
