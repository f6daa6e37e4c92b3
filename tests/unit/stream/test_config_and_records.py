"""The streaming config section, and the records written for dead letters and late events."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from flywheel.config.streaming import StreamingConfig
from flywheel.events.validation import Rejection
from flywheel.stream.records import Coordinates, coordinates_of, dead_letter, encode, late_event


def test_defaults_and_derived_milliseconds() -> None:
    cfg = StreamingConfig()
    assert (cfg.session_gap_ms, cfg.allowed_lateness_ms, cfg.dedup_horizon_ms) == (1_800_000, 600_000, 3_600_000)
    assert cfg.batch_size == 1000 and cfg.workers == 1


def test_unknown_keys_and_a_horizon_shorter_than_the_lateness_are_rejected() -> None:
    with pytest.raises(ValidationError, match="extra"):
        StreamingConfig.model_validate({"session_gap": 30})
    with pytest.raises(ValidationError, match="dedup_horizon_minutes must be at least"):
        StreamingConfig(allowed_lateness_minutes=30, dedup_horizon_minutes=10)


def test_dead_letter_record() -> None:
    where = Coordinates("events", 3, 17)
    rejections = (Rejection("wrong_type", "timestamp_ms", "bad"), Rejection("missing_field", "user_id", "gone"))
    letter = dead_letter(b'{"x": 1}', rejections, where, 1_000)
    assert letter == {
        "reason": "wrong_type: bad; missing_field: gone",
        "code": "wrong_type",
        "codes": ["wrong_type", "missing_field"],
        "fields": ["timestamp_ms", "user_id"],
        "payload": '{"x": 1}',
        "topic": "events",
        "partition": 3,
        "offset": 17,
        "received_ms": 1_000,
    }
    assert coordinates_of(encode(letter)) == where
    assert coordinates_of(b"not json") is None


def test_late_record() -> None:
    record = late_event(
        b"{}",
        event_id="e",
        user_id="u",
        ts_ms=100,
        watermark_ms=160,
        source=Coordinates("events", 0, 5),
        received_ms=200,
    )
    assert record["reason"] == "too_late: event time 100 is 60 ms behind the watermark"
    assert orjson.loads(encode(record))["watermark_ms"] == 160
