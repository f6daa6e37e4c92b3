"""Canary assignment, the rollout schedule and the rollout tags."""

import pytest

from flywheel.experiments.assignment import unit_hash
from flywheel.serving.routing import (
    NO_ROLLOUT,
    RolloutState,
    assign_variant,
    fraction_at,
    next_stage,
    rollout_from_tags,
)

USERS = [f"u{i:05d}" for i in range(4000)]


def test_assignment_is_the_experiments_hash_salted_with_the_rollout_id() -> None:
    for user in USERS[:200]:
        expected = "canary" if unit_hash(user, "r-1") < 0.3 else "champion"
        assert assign_variant(user, "r-1", 0.3) == expected


def test_the_canary_share_follows_the_fraction() -> None:
    share = sum(assign_variant(u, "r-1", 0.25) == "canary" for u in USERS) / len(USERS)
    assert 0.22 < share < 0.28


def test_the_ramp_is_monotone_a_canary_user_stays_canary() -> None:
    schedule = (0.05, 0.25, 0.5, 1.0)
    previous: set[str] = set()
    for fraction in schedule:
        canary = {u for u in USERS if assign_variant(u, "r-7", fraction) == "canary"}
        assert previous <= canary
        previous = canary
    assert previous == set(USERS)


def test_another_rollout_draws_other_users() -> None:
    a = {u for u in USERS if assign_variant(u, "r-1", 0.5) == "canary"}
    b = {u for u in USERS if assign_variant(u, "r-2", 0.5) == "canary"}
    assert a != b


def test_no_rollout_or_zero_fraction_is_all_champion() -> None:
    assert {assign_variant(u, None, 0.5) for u in USERS[:100]} == {"champion"}
    assert {assign_variant(u, "r-1", 0.0) for u in USERS[:100]} == {"champion"}


def test_schedule_stages() -> None:
    schedule = (0.05, 0.25, 0.5, 1.0)
    assert [fraction_at(schedule, s) for s in range(5)] == [0.05, 0.25, 0.5, 1.0, 1.0]
    assert next_stage(schedule, 0) == 1
    assert next_stage(schedule, 3) is None
    with pytest.raises(ValueError, match="stage"):
        fraction_at(schedule, -1)


def test_rollout_tags_parse_and_malformed_tags_mean_no_rollout() -> None:
    tags = {"rollout.id": "r-3", "rollout.fraction": "0.25", "rollout.stage": "1", "rollout.status": "running"}
    state = rollout_from_tags(tags)
    assert state == RolloutState("r-3", 0.25, 1, "running")
    assert state.canary_fraction == 0.25
    assert rollout_from_tags({**tags, "rollout.status": "promoted"}).canary_fraction == 0.0
    # answers carry the rollout id only while it runs: the evidence is what was served under it
    assert state.live_id == "r-3"
    assert rollout_from_tags({**tags, "rollout.status": "promoted"}).live_id is None
    assert rollout_from_tags({**tags, "rollout.status": "none"}).live_id is None
    assert rollout_from_tags({**tags, "rollout.fraction": "lots"}) == NO_ROLLOUT
    assert rollout_from_tags({**tags, "rollout.fraction": "1.5"}) == NO_ROLLOUT
    assert rollout_from_tags({}) == NO_ROLLOUT
