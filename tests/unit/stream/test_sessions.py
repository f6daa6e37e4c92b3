"""Sessions on event time with a watermark and an allowed lateness."""

from __future__ import annotations

from flywheel.features.sessions import Session, sessionize
from flywheel.stream.sessions import Lateness, UserSessions, add_event, classify, observe

MIN = 60_000
GAP = 30 * MIN
LATE = 10 * MIN


def test_classify() -> None:
    assert classify(5, None, LATE) is Lateness.ON_TIME
    assert classify(100 * MIN, 100 * MIN, LATE) is Lateness.ON_TIME
    assert classify(90 * MIN, 100 * MIN, LATE) is Lateness.LATE_ALLOWED  # exactly at the watermark
    assert classify(90 * MIN - 1, 100 * MIN, LATE) is Lateness.TOO_LATE


def test_a_gap_of_exactly_the_gap_stays_in_the_session() -> None:
    assert add_event([Session(0, 0, 1)], GAP, GAP) == [Session(0, GAP, 2)]
    assert add_event([Session(0, 0, 1)], GAP + 1, GAP) == [Session(0, 0, 1), Session(GAP + 1, GAP + 1, 1)]


def test_a_late_event_between_two_sessions_merges_them() -> None:
    sessions = [Session(0, 10 * MIN, 3), Session(45 * MIN, 50 * MIN, 2)]
    assert add_event(sessions, 30 * MIN, GAP) == [Session(0, 50 * MIN, 6)]


def test_a_late_event_before_a_session_extends_its_start() -> None:
    assert add_event([Session(40 * MIN, 50 * MIN, 2)], 20 * MIN, GAP) == [Session(20 * MIN, 50 * MIN, 3)]


def test_observe_closes_sessions_no_allowed_event_can_reach() -> None:
    state = UserSessions()
    assert observe(state, 0, gap_ms=GAP, allowed_lateness_ms=LATE) == (Lateness.ON_TIME, [])
    assert observe(state, 5 * MIN, gap_ms=GAP, allowed_lateness_ms=LATE) == (Lateness.ON_TIME, [])
    # watermark 40 - 10 = 30 min; the session ending at 5 min could still take an event at 30 min
    assert observe(state, 40 * MIN, gap_ms=GAP, allowed_lateness_ms=LATE) == (Lateness.ON_TIME, [])
    assert state.open == [Session(0, 5 * MIN, 2), Session(40 * MIN, 40 * MIN, 1)]
    # watermark 35 min: 5 < 35 - 30 is false (5 == 5), still open; at 46 min, watermark 36: closed
    assert observe(state, 45 * MIN, gap_ms=GAP, allowed_lateness_ms=LATE)[1] == []
    lateness, closed = observe(state, 46 * MIN, gap_ms=GAP, allowed_lateness_ms=LATE)
    assert (lateness, closed) == (Lateness.ON_TIME, [Session(0, 5 * MIN, 2)])
    assert state.open == [Session(40 * MIN, 46 * MIN, 3)]


def test_a_too_late_event_changes_nothing() -> None:
    state = UserSessions()
    observe(state, 100 * MIN, gap_ms=GAP, allowed_lateness_ms=LATE)
    assert observe(state, 80 * MIN, gap_ms=GAP, allowed_lateness_ms=LATE) == (Lateness.TOO_LATE, [])
    assert state.open == [Session(100 * MIN, 100 * MIN, 1)]
    assert state.max_ts_ms == 100 * MIN


def test_allowed_late_events_give_the_batch_sessions() -> None:
    times = [0, 20 * MIN, 12 * MIN, 55 * MIN, 47 * MIN, 90 * MIN, 200 * MIN, 195 * MIN, 260 * MIN]
    state = UserSessions()
    closed: list[Session] = []
    for ts in times:
        lateness, done = observe(state, ts, gap_ms=GAP, allowed_lateness_ms=LATE)
        assert lateness is not Lateness.TOO_LATE
        closed += done
    assert closed + state.open == sessionize(times, GAP)
    assert sessionize(times, GAP) == [
        Session(0, 55 * MIN, 5),
        Session(90 * MIN, 90 * MIN, 1),
        Session(195 * MIN, 200 * MIN, 2),
        Session(260 * MIN, 260 * MIN, 1),
    ]
