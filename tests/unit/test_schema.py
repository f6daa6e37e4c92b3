"""Versioned event schemas and the compatibility check between versions."""

from __future__ import annotations

import copy
import io
import json

import fastavro

from flywheel.events.schema import check_compatibility, check_read_compatibility, parse_schema_text, schemas


def _variant(version: int, mutate) -> object:
    raw = copy.deepcopy(schemas()[version].raw)
    raw["x-version"] = 99
    mutate(raw)
    return parse_schema_text(json.dumps(raw))


def test_every_shipped_version_is_fully_compatible_with_its_predecessor() -> None:
    versions = sorted(schemas())
    assert versions[0] == 1 and len(versions) >= 2
    for old, new in zip(versions, versions[1:], strict=False):
        reports = check_compatibility(schemas()[old], schemas()[new])
        assert [r.compatible for r in reports] == [True, True], [r.problems for r in reports]


def test_adding_a_required_field_breaks_backward_compatibility() -> None:
    new = _variant(2, lambda raw: raw["fields"].append({"name": "region", "type": "string"}))
    backward, forward = check_compatibility(schemas()[2], new)
    assert not backward.compatible and "region" in " ".join(backward.problems)
    assert forward.compatible  # old readers ignore the new field


def test_removing_a_required_field_breaks_forward_compatibility() -> None:
    new = _variant(2, lambda raw: raw.update(fields=[f for f in raw["fields"] if f["name"] != "session_id"]))
    backward, forward = check_compatibility(schemas()[2], new)
    assert backward.compatible
    assert not forward.compatible


def test_changing_a_type_incompatibly_is_caught() -> None:
    def mutate(raw: dict) -> None:
        for field in raw["fields"]:
            if field["name"] == "timestamp_ms":
                field["type"] = "string"

    assert not check_read_compatibility(_variant(2, mutate), schemas()[2]).compatible


def test_new_event_types_are_forward_incompatible() -> None:
    new = _variant(2, lambda raw: raw["x-event-types"].append("download"))
    backward, forward = check_compatibility(schemas()[2], new)
    assert backward.compatible
    assert not forward.compatible and "download" in forward.problems[-1]


def test_v1_records_resolve_into_v2_with_defaults() -> None:
    record = {
        "event_id": "6f1c2a1e-0000-4000-8000-000000000001",
        "event_type": "click",
        "schema_version": 1,
        "timestamp_ms": 1_700_000_000_000,
        "user_id": "u1",
        "session_id": "s1",
        "content_id": "c1",
        "device": {"type": "tv", "os": "tizen", "app_version": "1.0", "device_id": None},
        "context": {"page": "home", "row": 0, "position": 3, "algorithm": None, "experiment_id": None, "variant": None},
        "watch_seconds": None,
        "position_seconds": None,
        "query": None,
    }
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schemas()[1].parsed, record)
    buffer.seek(0)
    read = fastavro.schemaless_reader(buffer, schemas()[1].parsed, schemas()[2].parsed)
    assert read["device"]["household_id"] is None and read["rating"] is None
    assert read["context"]["position"] == 3
