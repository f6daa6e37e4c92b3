"""The records the stream writes for events it does not fold: dead letters and late events.

Both carry the coordinates of the source record (topic, partition, offset), which identify it
uniquely: a sink that finds a coordinate already written skips it, so a replay after a crash
writes nothing twice.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson

from flywheel.events.validation import Rejection


class Coordinates(NamedTuple):
    """Where a record was read. A tuple, so it equals the plain ``(topic, partition, offset)``
    tuple the dataflow passes between workers."""

    topic: str
    partition: int
    offset: int


def payload_fields(payload: bytes) -> dict[str, str]:
    """The raw payload as text when it is UTF-8, else as base64."""
    try:
        return {"payload": payload.decode("utf-8")}
    except UnicodeDecodeError:
        return {"payload_b64": base64.b64encode(payload).decode("ascii")}


def raw_payload(record: dict[str, Any]) -> bytes:
    """The payload bytes of a dead-letter or late record."""
    if "payload" in record:
        return str(record["payload"]).encode("utf-8")
    return base64.b64decode(record["payload_b64"])


def dead_letter(
    payload: bytes, rejections: Sequence[Rejection], source: Coordinates, received_ms: int
) -> dict[str, Any]:
    """The dead-letter record of a rejected payload.

    Args:
        payload: The raw bytes as read.
        rejections: Why it was rejected (at least one).
        source: Where it was read.
        received_ms: When the log received it (the clock the clock-skew rule used).
    """
    return {
        "reason": "; ".join(str(r) for r in rejections),
        "code": rejections[0].code,
        "codes": [r.code for r in rejections],
        "fields": [r.field for r in rejections],
        **payload_fields(payload),
        "topic": source.topic,
        "partition": source.partition,
        "offset": source.offset,
        "received_ms": received_ms,
    }


def late_event(
    payload: bytes,
    *,
    event_id: str,
    user_id: str,
    ts_ms: int,
    watermark_ms: int,
    source: Coordinates,
    received_ms: int,
) -> dict[str, Any]:
    """The record of an event that came after its user's watermark."""
    return {
        "reason": f"too_late: event time {ts_ms} is {watermark_ms - ts_ms} ms behind the watermark",
        "event_id": event_id,
        "user_id": user_id,
        "timestamp_ms": ts_ms,
        "watermark_ms": watermark_ms,
        **payload_fields(payload),
        "topic": source.topic,
        "partition": source.partition,
        "offset": source.offset,
        "received_ms": received_ms,
    }


def encode(record: dict[str, Any]) -> bytes:
    """JSON bytes of a record."""
    return orjson.dumps(record)


def coordinates_of(value: bytes) -> Coordinates | None:
    """The source coordinates of a written record (None when it has none)."""
    try:
        data = orjson.loads(value)
        return Coordinates(str(data["topic"]), int(data["partition"]), int(data["offset"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
