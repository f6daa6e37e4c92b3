"""Small schema-v2 events for the feature tests (valid unless a test breaks them on purpose)."""

from __future__ import annotations

import uuid
from typing import Any

from flywheel.features.formulas import DAY_MS, ContentMeta, UserProfile

#: 2026-11-02T00:00:00Z, a Monday: day bucket 20394.
T0 = 1_762_041_600_000
MIN = 60_000
HOUR = 3_600_000


def event(
    event_type: str,
    ts_ms: int,
    *,
    user: str = "u000001",
    content: str | None = "c000001",
    device: str = "tv",
    watch: float | None = None,
    position_s: float | None = None,
    rating: float | None = None,
    duration: float | None = None,
    query: str | None = None,
    position: int | None = None,
    propensity: float | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """One schema-v2 event."""
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "event_type": event_type,
        "schema_version": 2,
        "timestamp_ms": ts_ms,
        "user_id": user,
        "session_id": f"s-{user}",
        "content_id": content,
        "device": {"type": device, "os": "linux", "app_version": "1.0", "device_id": f"d-{user}", "household_id": "h1"},
        "context": {
            "page": "home",
            "row": 0,
            "position": position,
            "algorithm": "pop",
            "experiment_id": None,
            "variant": None,
            "propensity": propensity,
        },
        "watch_seconds": watch,
        "position_seconds": position_s,
        "query": query,
        "duration_seconds": duration,
        "rating": rating,
        "source": "test",
    }


CATALOG = {
    "c000001": ContentMeta("c000001", ("drama", "crime"), "k1", 3600.0, T0 - 10 * DAY_MS),
    "c000002": ContentMeta("c000002", ("comedy",), "k2", 1800.0, T0 - 100 * DAY_MS),
    "c000003": ContentMeta("c000003", ("kids", "mystery-unknown"), "k1", 600.0, T0 - 2 * DAY_MS),
}
USERS = {
    "u000001": UserProfile("u000001", "premium", T0 - 40 * DAY_MS),
    "u000002": UserProfile("u000002", "free", T0 - 5 * DAY_MS),
}


def scenario() -> list[dict[str, Any]]:
    """Two users, three titles, three days, searches, skips, ratings, a session gap."""
    d = DAY_MS
    return [
        # u1, day 0: one session 20:00-20:50 (tv), a drama watched 45 min then completed
        event("search", T0 + 20 * HOUR, content=None, query="drama"),
        event("impression", T0 + 20 * HOUR + 1 * MIN, position=0, propensity=0.5),
        event("click", T0 + 20 * HOUR + 2 * MIN),
        event("playback.started", T0 + 20 * HOUR + 3 * MIN),
        event("playback.paused", T0 + 20 * HOUR + 20 * MIN, watch=1020.0, position_s=1020.0),
        event("playback.completed", T0 + 20 * HOUR + 50 * MIN, watch=1800.0, position_s=3600.0, rating=4.0),
        # u1, day 0, a second session after a gap of 31 min: comedy skipped after 12 s (mobile)
        event("impression", T0 + 21 * HOUR + 21 * MIN, content="c000002", position=3, propensity=0.25),
        event("playback.started", T0 + 21 * HOUR + 22 * MIN, content="c000002", device="mobile"),
        event(
            "playback.stopped",
            T0 + 21 * HOUR + 22 * MIN + 12_000,
            content="c000002",
            device="mobile",
            watch=12.0,
            position_s=12.0,
        ),
        # u1, day 2 morning: kids title, stopped after 10 min; a like with a rating
        event("playback.started", T0 + 2 * d + 8 * HOUR, content="c000003", device="tablet"),
        event(
            "playback.stopped",
            T0 + 2 * d + 8 * HOUR + 10 * MIN,
            content="c000003",
            device="tablet",
            watch=600.0,
            position_s=600.0,
        ),
        event("like", T0 + 2 * d + 8 * HOUR + 11 * MIN, content="c000003", rating=5.0),
        # u2 (free), day 1: two impressions, one play of an unknown title, searches
        event("impression", T0 + d + 1 * HOUR, user="u000002", content="c000002", position=1, propensity=0.4),
        event("impression", T0 + d + 1 * HOUR, user="u000002", content="c000001", position=2, propensity=0.2),
        event("search", T0 + d + 1 * HOUR + 1 * MIN, user="u000002", content=None, query="x"),
        event("search", T0 + d + 1 * HOUR + 2 * MIN, user="u000002", content=None, query="y"),
        event("playback.started", T0 + d + 2 * HOUR, user="u000002", content="c999999", device="web"),
        event(
            "playback.stopped",
            T0 + d + 2 * HOUR + 5 * MIN,
            user="u000002",
            content="c999999",
            device="web",
            watch=300.0,
            position_s=300.0,
        ),
    ]
