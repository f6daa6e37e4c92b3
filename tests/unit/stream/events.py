"""Small schema-v2 events and log records for the stream tests."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from flywheel.events.log import Record

#: 2026-11-02T00:00:00Z, day bucket 20394.
T0 = 1_762_041_600_000
MIN = 60_000
HOUR = 3_600_000


def event(
    event_type: str,
    ts_ms: int,
    *,
    user: str = "u1",
    content: str | None = "c1",
    device: str = "tv",
    watch: float | None = None,
    position_s: float | None = None,
    rating: float | None = None,
    query: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """One valid schema-v2 event."""
    return {
        "event_id": event_id or str(uuid.UUID(int=abs(hash((event_type, ts_ms, user, content))) % 2**128)),
        "event_type": event_type,
        "schema_version": 2,
        "timestamp_ms": ts_ms,
        "user_id": user,
        "session_id": f"s-{user}",
        "content_id": content,
        "device": {"type": device, "os": "linux", "app_version": "1.0", "device_id": None, "household_id": None},
        "context": {
            "page": "home",
            "row": 0,
            "position": 1,
            "algorithm": "pop",
            "experiment_id": None,
            "variant": None,
            "propensity": None,
        },
        "watch_seconds": watch,
        "position_seconds": position_s,
        "query": query,
        "duration_seconds": None,
        "rating": rating,
        "source": "test",
    }


def record(
    payload: dict[str, Any] | bytes, offset: int, *, received_ms: int | None = None, partition: int = 0
) -> Record:
    """A record of the events topic holding ``payload``, received at its event time by default."""
    raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    ts = received_ms if received_ms is not None else (payload["timestamp_ms"] if isinstance(payload, dict) else T0)
    key = payload["user_id"].encode() if isinstance(payload, dict) else b"u1"
    return Record("events", partition, offset, key, raw, ts)
