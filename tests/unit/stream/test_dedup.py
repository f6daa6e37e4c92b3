"""Bounded-horizon deduplication by event_id."""

from __future__ import annotations

from flywheel.stream.dedup import DedupState, observe

MIN = 60_000


def test_a_repeat_within_the_horizon_is_a_duplicate() -> None:
    state = DedupState(horizon_ms=10 * MIN)
    assert observe(state, "a", 0) is False
    assert observe(state, "b", 5 * MIN) is False
    assert observe(state, "a", 9 * MIN) is True
    assert len(state) == 2


def test_ids_older_than_the_horizon_are_forgotten() -> None:
    state = DedupState(horizon_ms=10 * MIN)
    observe(state, "a", 0)
    observe(state, "b", 10 * MIN)  # 0 is not before 10 - 10: "a" kept
    assert len(state) == 2
    observe(state, "c", 10 * MIN + 1)  # now "a" (at 0) is before the horizon start
    assert state.seen == {"b", "c"}
    assert observe(state, "a", 11 * MIN) is False


def test_an_out_of_order_id_is_kept_at_least_as_long_as_the_horizon() -> None:
    state = DedupState(horizon_ms=10 * MIN)
    observe(state, "late", 30 * MIN)
    observe(state, "early", 25 * MIN)  # out of order, queued behind "late"
    observe(state, "x", 36 * MIN)  # horizon starts at 26: "late" (30) stays, so does "early"
    assert observe(state, "early", 36 * MIN) is True
    observe(state, "y", 41 * MIN)  # horizon 31: "late" evicted, then "early" (25) evicted
    assert state.seen == {"x", "y"}
