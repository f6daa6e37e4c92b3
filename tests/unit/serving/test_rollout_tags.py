"""The order the rollout tags are written in: a server polling between two writes never routes by a mix."""

from dataclasses import replace

import pytest

from flywheel.serving.rollout import RolloutRecord
from flywheel.serving.rollout_registry import state_tags
from flywheel.serving.routing import TAG_STATUS, assign_variant, rollout_from_tags

USERS = [f"u{i:05d}" for i in range(400)]
R1_PROMOTED = RolloutRecord("r-1", "promoted", 2, 0.0, 1_000, "1", "2")
R2_START = RolloutRecord("r-2", "running", 0, 0.05, 2_000, "2", "3")
R2_RAISED = replace(R2_START, stage=1, fraction=0.25, stage_started_ms=3_000)


def _routes(tags: dict[str, str]) -> list[tuple[str, str | None]]:
    """How a server reading ``tags`` answers each user: the variant and the rollout id it logs."""
    state = rollout_from_tags(tags)
    return [(assign_variant(u, state.rollout_id, state.canary_fraction), state.live_id) for u in USERS]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (None, R2_START),
        (R1_PROMOTED, R2_START),
        (R2_START, R2_RAISED),
        (R2_RAISED, replace(R2_RAISED, status="promoted", fraction=0.0, stage_started_ms=4_000)),
        (R2_RAISED, replace(R2_RAISED, status="rolled_back", fraction=0.0, stage_started_ms=4_000)),
    ],
    ids=["first start", "start after a promotion", "raise", "promote", "roll back"],
)
def test_every_state_between_two_writes_routes_as_before_or_as_after(
    before: RolloutRecord | None, after: RolloutRecord
) -> None:
    tags = dict(state_tags(before)) if before is not None else {}
    old, new = _routes(tags), _routes(dict(state_tags(after)))
    for key, value in state_tags(after):
        tags[key] = value
        assert _routes(tags) in (old, new), f"after writing {key}={value!r} the server routes by a mix"
    assert _routes(tags) == new


def test_a_start_writes_its_status_last_and_an_end_first() -> None:
    assert state_tags(R2_START)[-1] == (TAG_STATUS, "running")
    assert state_tags(replace(R2_START, status="rolled_back"))[0] == (TAG_STATUS, "rolled_back")
