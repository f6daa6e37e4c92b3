"""Sessionization with an inactivity gap, as pure functions (batch and incremental)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Session:
    """A run of one user's events with no gap longer than the inactivity gap."""

    start_ms: int
    end_ms: int
    events: int

    @property
    def seconds(self) -> float:
        """Length from the first to the last event."""
        return (self.end_ms - self.start_ms) / 1000.0


def sessionize(timestamps_ms: Iterable[int], gap_ms: int) -> list[Session]:
    """Split one user's event times into sessions.

    A new session starts when an event comes more than ``gap_ms`` after the previous one (a gap of
    exactly ``gap_ms`` stays in the session), as Spark's ``lag`` window does in the batch job.

    Args:
        timestamps_ms: Event times of one user, in any order.
        gap_ms: The inactivity gap.

    Returns:
        The sessions in time order.
    """
    sessions: list[Session] = []
    open_session: Session | None = None
    for ts in sorted(timestamps_ms):
        open_session, closed = extend_session(open_session, ts, gap_ms)
        if closed is not None:
            sessions.append(closed)
    if open_session is not None:
        sessions.append(open_session)
    return sessions


def extend_session(open_session: Session | None, ts_ms: int, gap_ms: int) -> tuple[Session, Session | None]:
    """Fold one (in-order) event time into a user's open session.

    Returns:
        The open session after the event, and the session it closed (None when it did not close one).
    """
    if open_session is None:
        return Session(ts_ms, ts_ms, 1), None
    if ts_ms - open_session.end_ms > gap_ms:
        return Session(ts_ms, ts_ms, 1), open_session
    return Session(open_session.start_ms, max(ts_ms, open_session.end_ms), open_session.events + 1), None
