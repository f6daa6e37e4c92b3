"""Per-user sessions on event time, with a watermark and an allowed lateness.

A user's watermark trails the newest event time seen for the user by the allowed lateness.
An event at or after the newest time is on time; one behind it but not behind the watermark is
late but allowed: it still updates the features and lands in the right session (extending,
or merging, the sessions it falls between); one behind the watermark is too late and leaves the
stream for the late topic. A session is final once no allowed event can reach it any more.

Sessions follow :func:`flywheel.features.sessions.sessionize`, the batch rule: a new session
starts after a gap of more than ``gap_ms`` (a gap of exactly ``gap_ms`` stays in the session).
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from enum import Enum

from flywheel.features.sessions import Session


class Lateness(Enum):
    """How an event's time compares with its user's stream."""

    ON_TIME = "on_time"
    LATE_ALLOWED = "late_allowed"
    TOO_LATE = "too_late"


def classify(ts_ms: int, max_ts_ms: int | None, allowed_lateness_ms: int) -> Lateness:
    """Classify an event against the newest event time of its user.

    Args:
        ts_ms: The event's time.
        max_ts_ms: The newest event time seen for the user (None: the first event).
        allowed_lateness_ms: How far behind the newest time an event is still accepted.
    """
    if max_ts_ms is None or ts_ms >= max_ts_ms:
        return Lateness.ON_TIME
    if ts_ms >= max_ts_ms - allowed_lateness_ms:
        return Lateness.LATE_ALLOWED
    return Lateness.TOO_LATE


@dataclass
class UserSessions:
    """The sessions of one user that an allowed event could still change, in time order."""

    max_ts_ms: int | None = None
    open: list[Session] = field(default_factory=list)

    def watermark_ms(self, allowed_lateness_ms: int) -> int | None:
        """Events before this time are too late (None before the first event)."""
        return None if self.max_ts_ms is None else self.max_ts_ms - allowed_lateness_ms


def add_event(open_sessions: list[Session], ts_ms: int, gap_ms: int) -> list[Session]:
    """Put one event time into a sorted list of disjoint sessions.

    The event joins every session it is within ``gap_ms`` of; those sessions merge into one.

    Returns:
        The new sorted list.
    """
    if open_sessions and ts_ms >= open_sessions[-1].end_ms:  # the usual case: in order
        last = open_sessions[-1]
        if ts_ms - last.end_ms <= gap_ms:
            return [*open_sessions[:-1], Session(last.start_ms, ts_ms, last.events + 1)]
        return [*open_sessions, Session(ts_ms, ts_ms, 1)]
    starts = [s.start_ms for s in open_sessions]
    i = bisect_left(starts, ts_ms)
    # candidates: the session before the insertion point and those after it within the gap
    lo = i - 1 if i > 0 and ts_ms - open_sessions[i - 1].end_ms <= gap_ms else i
    hi = i
    while hi < len(open_sessions) and open_sessions[hi].start_ms - ts_ms <= gap_ms:
        hi += 1
    if lo == hi:
        return [*open_sessions[:i], Session(ts_ms, ts_ms, 1), *open_sessions[i:]]
    joined = open_sessions[lo:hi]
    merged = Session(
        min(joined[0].start_ms, ts_ms),
        max(joined[-1].end_ms, ts_ms),
        sum(s.events for s in joined) + 1,
    )
    return [*open_sessions[:lo], merged, *open_sessions[hi:]]


def observe(
    state: UserSessions, ts_ms: int, *, gap_ms: int, allowed_lateness_ms: int
) -> tuple[Lateness, list[Session]]:
    """Fold one event time into a user's sessions.

    Args:
        state: The user's session state (updated in place unless the event is too late).
        ts_ms: The event's time.
        gap_ms: The inactivity gap.
        allowed_lateness_ms: The allowed lateness.

    Returns:
        The event's classification and the sessions that became final (time order).
    """
    newest = state.max_ts_ms
    if newest is None or ts_ms >= newest:  # classify(), inlined: every event of the stream comes here
        lateness = Lateness.ON_TIME
        state.max_ts_ms = newest = ts_ms
    elif ts_ms >= newest - allowed_lateness_ms:
        lateness = Lateness.LATE_ALLOWED
    else:
        return Lateness.TOO_LATE, []
    sessions = state.open
    if sessions and ts_ms >= sessions[-1].end_ms:  # add_event()'s usual case, in place
        last = sessions[-1]
        if ts_ms - last.end_ms <= gap_ms:
            sessions[-1] = Session(last.start_ms, ts_ms, last.events + 1)
        else:
            sessions.append(Session(ts_ms, ts_ms, 1))
    else:
        state.open = add_event(sessions, ts_ms, gap_ms)
    if state.open[0].end_ms >= newest - allowed_lateness_ms - gap_ms:
        return lateness, []  # nothing became final (close_final's answer, without the call)
    return lateness, close_final(state, gap_ms=gap_ms, allowed_lateness_ms=allowed_lateness_ms)


def close_final(state: UserSessions, *, gap_ms: int, allowed_lateness_ms: int) -> list[Session]:
    """Remove and return the sessions no allowed event can reach any more.

    An allowed event is at or after the watermark; it joins a session ending at ``end`` only if
    it is within ``gap_ms`` of it, so a session ending before ``watermark - gap_ms`` is final.
    """
    watermark = state.watermark_ms(allowed_lateness_ms)
    if watermark is None:
        return []
    limit = watermark - gap_ms
    n = 0
    while n < len(state.open) and state.open[n].end_ms < limit:
        n += 1
    closed, state.open = state.open[:n], state.open[n:]
    return closed
