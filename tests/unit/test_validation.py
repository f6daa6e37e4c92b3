"""Event validation: valid events pass, each kind of bad input gets its own reason, nothing crashes."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flywheel.events.validation import REJECTION_CODES, EventValidator, ValidationRules

NOW = 1_760_000_000_000
VALIDATOR = EventValidator(rules=ValidationRules(max_clock_skew_ms=300_000))


def good_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": "0b5d2c58-3a54-4f4e-9d2a-6a0f5e2b9c11",
        "event_type": "playback.stopped",
        "schema_version": 2,
        "timestamp_ms": NOW - 1000,
        "user_id": "u000001",
        "session_id": "s-1",
        "content_id": "c000042",
        "device": {"type": "tv", "os": "tizen", "app_version": "5.1.0", "device_id": "d1", "household_id": "h1"},
        "context": {
            "page": "home",
            "row": 1,
            "position": 4,
            "algorithm": "two_tower",
            "experiment_id": None,
            "variant": None,
            "propensity": 0.2,
        },
        "watch_seconds": 1260.0,
        "position_seconds": 1260.0,
        "query": None,
        "duration_seconds": 2700.0,
        "rating": None,
        "source": "test",
    }
    event.update(overrides)
    return event


def codes(payload: Any) -> set[str]:
    result = VALIDATOR.validate(payload, now_ms=NOW)
    return {r.code for r in result.rejections}


def test_a_good_event_passes_and_is_returned() -> None:
    result = VALIDATOR.validate_bytes(orjson.dumps(good_event()), now_ms=NOW)
    assert result.ok and result.event is not None and result.reason == ""


def test_a_v1_event_is_validated_against_v1() -> None:
    v1 = good_event(schema_version=1)
    for name in ("duration_seconds", "rating", "source"):
        del v1[name]
    del v1["device"]["household_id"]
    del v1["context"]["propensity"]
    assert VALIDATOR.validate(v1, now_ms=NOW).ok
    # a v2-only field in a v1 event is unknown there
    assert codes({**v1, "rating": 4.0}) == {"unknown_field"}


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        (b'{"event_id": "0b5d2c58-3a54', "malformed_json", ""),
        (b"[1, 2]", "not_an_object", ""),
        (orjson.dumps(good_event(schema_version=7)), "unknown_schema_version", "schema_version"),
        (orjson.dumps(good_event(event_type="teleport")), "unknown_event_type", "event_type"),
        (orjson.dumps(good_event(timestamp_ms="yesterday")), "wrong_type", "timestamp_ms"),
        (orjson.dumps(good_event(watch_seconds=-5.0)), "negative_value", "watch_seconds"),
        (orjson.dumps(good_event(watch_seconds=10 * 86400.0)), "out_of_range", "watch_seconds"),
        (orjson.dumps(good_event(timestamp_ms=NOW + 3_600_000)), "future_timestamp", "timestamp_ms"),
        (orjson.dumps(good_event(timestamp_ms=-5)), "implausible_timestamp", "timestamp_ms"),
        (orjson.dumps(good_event(event_id="not-a-uuid")), "invalid_uuid", "event_id"),
        (orjson.dumps(good_event(content_id=None)), "missing_content_id", "content_id"),
        (orjson.dumps(good_event(watch_seconds=None)), "missing_watch_seconds", "watch_seconds"),
        (orjson.dumps(good_event(event_type="search", content_id=None, query="")), "missing_query", "query"),
        (
            orjson.dumps(good_event(device={"type": "fridge", "os": "x", "app_version": "1"})),
            "invalid_enum",
            "device.type",
        ),
        (orjson.dumps(good_event(surprise=1)), "unknown_field", "surprise"),
    ],
)
def test_each_kind_of_bad_event_has_its_own_reason(payload: bytes, code: str, field: str) -> None:
    result = VALIDATOR.validate_bytes(payload, now_ms=NOW)
    assert not result.ok and result.event is None
    assert code in {r.code for r in result.rejections}
    assert field in {r.field for r in result.rejections}
    assert all(r.message for r in result.rejections)


def test_missing_required_fields_are_each_named() -> None:
    event = good_event()
    del event["user_id"]
    del event["session_id"]
    result = VALIDATOR.validate(event, now_ms=NOW)
    assert {(r.code, r.field) for r in result.rejections} == {
        ("missing_field", "user_id"),
        ("missing_field", "session_id"),
    }


def test_negative_position_in_context() -> None:
    event = good_event()
    event["context"] = {**event["context"], "position": -1}
    assert codes(event) == {"negative_value"}


def test_propensity_must_be_a_probability() -> None:
    event = good_event()
    event["context"] = {**event["context"], "propensity": 1.5}
    assert codes(event) == {"out_of_range"}


def test_clock_skew_limit_is_configurable() -> None:
    lenient = EventValidator(rules=ValidationRules(max_clock_skew_ms=2 * 3_600_000))
    assert lenient.validate(good_event(timestamp_ms=NOW + 3_600_000), now_ms=NOW).ok


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_no_bytes_crash_the_validator_and_rejections_have_reasons(payload: bytes) -> None:
    result = VALIDATOR.validate_bytes(payload, now_ms=NOW)
    assert (VALIDATOR.accept_bytes(payload, now_ms=NOW) is not None) == result.ok
    if not result.ok:
        assert result.rejections and all(r.code in REJECTION_CODES and r.message for r in result.rejections)


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(sorted(good_event())), value=json_values)
def test_no_field_value_crashes_the_validator(field: str, value: Any) -> None:
    event = copy.deepcopy(good_event())
    event[field] = value
    result = VALIDATOR.validate(event, now_ms=NOW)
    assert result.ok or all(r.code in REJECTION_CODES and r.message for r in result.rejections)


@settings(max_examples=200, deadline=None)
@given(field=st.sampled_from(["device", "context"]), key=st.text(max_size=10), value=json_values)
def test_nested_values_never_crash(field: str, key: str, value: Any) -> None:
    event = copy.deepcopy(good_event())
    event[field] = {**event[field], key: value}
    result = VALIDATOR.validate(event, now_ms=NOW)
    assert result.ok or all(r.code in REJECTION_CODES for r in result.rejections)


@settings(max_examples=600, deadline=None)
@given(
    field=st.sampled_from(sorted(good_event())),
    nested=st.sampled_from(["", "device", "context"]),
    key=st.text(max_size=10),
    value=json_values,
)
def test_the_fast_checks_agree_with_the_slow_ones(field: str, nested: str, key: str, value: Any) -> None:
    """The schema check in C answers as the schema walk; the validator's fast path accepts exactly
    what every check (the walk and each semantic rule, with reasons) accepts."""
    from flywheel.events.schema import schemas
    from flywheel.events.validation import _compile_record, schema_check

    event = copy.deepcopy(good_event())
    if nested:
        event[nested] = {**event[nested], key: value}
    else:
        event[field] = value
    parsed = schemas()[2].parsed
    walk: list = []
    _compile_record(parsed)(event, "", walk)
    assert schema_check(parsed)(event) == (not walk)
    slow = VALIDATOR._validate_slowly(event, NOW)
    assert VALIDATOR.validate(event, now_ms=NOW).ok == slow.ok
    try:
        payload = orjson.dumps(event)
    except TypeError:  # an integer beyond 64 bits: JSON this test cannot write
        return
    # the stream's path, bytes to a Struct in one pass, accepts what the checks with reasons accept
    assert (VALIDATOR.accept_bytes(payload, now_ms=NOW) is not None) == VALIDATOR.validate_bytes(payload, now_ms=NOW).ok


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("watch_seconds", -1),
        ("watch_seconds", 6 * 3600.0 + 1),
        ("rating", -0.5),
        ("duration_seconds", -1.0),
        ("event_type", "teleport"),
        ("event_id", "not-a-uuid"),
        ("event_id", "12345678-1234-1234-1234-123456789abc\n"),
        ("timestamp_ms", -5),
        ("timestamp_ms", NOW + 3_600_000),
        ("content_id", None),
        ("watch_seconds", None),
    ],
)
def test_the_fast_path_sends_each_semantic_failure_to_the_slow_path(field: str, value: Any) -> None:
    event = {**good_event(), "event_type": "playback.stopped", "watch_seconds": 30.0}
    event[field] = value
    result = VALIDATOR.validate(event, now_ms=NOW)
    assert not result.ok and result.rejections == VALIDATOR._validate_slowly(event, NOW).rejections


@pytest.mark.parametrize(("name", "value"), [("row", -1), ("position", -2), ("propensity", 0.0), ("propensity", 1.5)])
def test_the_fast_path_checks_the_context_rules(name: str, value: Any) -> None:
    event = copy.deepcopy(good_event())
    event["context"][name] = value
    assert not VALIDATOR.validate(event, now_ms=NOW).ok


def test_the_byte_path_returns_the_event_of_its_own_schema_version() -> None:
    v2 = VALIDATOR.accept_bytes(orjson.dumps(good_event(rating=4.5)), now_ms=NOW)
    assert v2 is not None and v2.schema_version == 2 and v2.content_id == "c000042"
    assert v2.timestamp_ms == NOW - 1000 and v2.rating == 4.5  # type: ignore[attr-defined]
    v1_fields = good_event(schema_version=1)
    for name in ("duration_seconds", "rating", "source"):
        del v1_fields[name]
    del v1_fields["device"]["household_id"]
    del v1_fields["context"]["propensity"]
    v1 = VALIDATOR.accept_bytes(orjson.dumps(v1_fields), now_ms=NOW)
    assert v1 is not None and v1.schema_version == 1 and not hasattr(v1, "rating")
    assert VALIDATOR.as_struct(v1_fields) == v1
    for bad in (
        orjson.dumps(good_event(schema_version=1)),  # v2 fields in an event that says v1
        orjson.dumps(good_event(schema_version=3)),
        orjson.dumps(good_event(event_id="0b5d2c58-3a54-4f4e-9d2a-6a0f5e2b9c11\n")),
        orjson.dumps(good_event(timestamp_ms=NOW + 3_600_000)),  # beyond the clock skew
        orjson.dumps(good_event(event_type="search", content_id=None, query="")),
        b'{"event_id": "\xff"}',
        orjson.dumps(good_event())[:-1],
    ):
        assert VALIDATOR.accept_bytes(bad, now_ms=NOW) is None, bad
        assert not VALIDATOR.validate_bytes(bad, now_ms=NOW).ok, bad
