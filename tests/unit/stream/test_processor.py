"""The per-partition step: every record is processed, dead-lettered, late or a duplicate."""

from __future__ import annotations

import base64
import zlib

import orjson

from flywheel.events.validation import EventValidator
from flywheel.features import formulas as f
from flywheel.stream.features import FeatureContext
from flywheel.stream.processor import (
    ContentShardState,
    PartitionState,
    StreamRules,
    emit_contents,
    emit_users,
    process_batch,
    process_contents,
    process_record,
    shard_of,
)
from flywheel.stream.records import raw_payload
from tests.unit.stream.events import MIN, T0, event, record

RULES = StreamRules(session_gap_ms=30 * MIN, allowed_lateness_ms=10 * MIN, dedup_horizon_ms=60 * MIN)
CTX = FeatureContext(vocab=f.GenreVocabulary(("drama",)), allowed_lateness_ms=10 * MIN)


def _run(records: list) -> tuple[PartitionState, list]:
    state = PartitionState.empty(RULES)
    out: list = []
    validator = EventValidator()
    for rec in records:
        process_record(state, rec, validator=validator, rules=RULES, ctx=CTX, out=out)
    return state, out


def test_each_kind_of_bad_input_lands_in_the_dlq_with_its_own_reason() -> None:
    good = event("playback.stopped", T0, watch=10.0)
    wrong_type = {**good, "timestamp_ms": "yesterday"}
    unknown_type = {**good, "event_type": "teleport"}
    missing = {k: v for k, v in good.items() if k != "user_id"}
    future = {**good, "timestamp_ms": T0 + 301_000}
    negative_watch = {**good, "watch_seconds": -1.0}
    negative_position = {**good, "context": {**good["context"], "position": -1}}
    payloads = [
        b'{"event_id": "abc", "event_ty',
        wrong_type,
        unknown_type,
        missing,
        future,
        negative_watch,
        negative_position,
        b"\xff\xfe",
    ]
    raw = [p if isinstance(p, bytes) else orjson.dumps(p) for p in payloads]
    records = [record(p, i, received_ms=T0) for i, p in enumerate(raw)]
    state, out = _run(records)
    assert [item[0] for item in out] == ["dlq"] * 8
    letters = [orjson.loads(item[2]) for item in out]
    assert [letter["code"] for letter in letters] == [
        "malformed_json",
        "wrong_type",
        "unknown_event_type",
        "missing_field",
        "future_timestamp",
        "negative_value",
        "negative_value",
        "malformed_json",
    ]
    assert [letter["fields"][0] for letter in letters][4:7] == ["timestamp_ms", "watch_seconds", "context.position"]
    assert letters[0]["payload"] == '{"event_id": "abc", "event_ty'
    assert letters[7]["payload_b64"] == base64.b64encode(b"\xff\xfe").decode()
    assert raw_payload(letters[7]) == b"\xff\xfe"
    assert [(x["topic"], x["partition"], x["offset"], x["received_ms"]) for x in letters][:2] == [
        ("events", 0, 0, T0),
        ("events", 0, 1, T0),
    ]
    assert state.counts.to_dict()["dlq_by_code"] == {
        "future_timestamp": 1,
        "malformed_json": 2,
        "missing_field": 1,
        "negative_value": 2,
        "unknown_event_type": 1,
        "wrong_type": 1,
    }
    assert state.counts.received == 8 and state.counts.balanced


def test_duplicates_late_events_and_reconciliation() -> None:
    first = event("playback.started", T0 + 60 * MIN)
    events = [
        first,
        {**first},  # duplicate
        event("impression", T0 + 55 * MIN),  # 5 min behind: late but allowed
        event("impression", T0 + 40 * MIN),  # 20 min behind: too late
        event("playback.stopped", T0 + 61 * MIN, watch=50.0, position_s=50.0),
    ]
    state, out = _run([record(e, i) for i, e in enumerate(events)])
    assert state.counts.to_dict() == {
        "received": 5,
        "processed": 3,
        "dlq": 0,
        "dlq_by_code": {},
        "late": 1,
        "duplicates": 1,
        "late_allowed": 1,
        "balanced": True,
    }
    late = [orjson.loads(item[2]) for item in out if item[0] == "late"]
    assert len(late) == 1
    assert late[0]["timestamp_ms"] == T0 + 40 * MIN
    assert late[0]["watermark_ms"] == T0 + 50 * MIN
    assert late[0]["offset"] == 3
    assert [item[1:4] for item in out if item[0] == "content"] == [
        ("c1", T0 + 60 * MIN, "playback.started"),
        ("c1", T0 + 55 * MIN, "impression"),
        ("c1", T0 + 61 * MIN, "playback.stopped"),
    ]
    (row,) = emit_users(state, CTX)
    assert row["event_timestamp"] == T0 + 61 * MIN + 1
    assert row["user_total_watch_hours_7d"] == 50.0 / 3600
    assert row["user_plays_1h"] == 1
    assert row["user_avg_session_length_30d"] == 6 * 60.0  # 55 -> 61 min, the open session
    assert emit_users(state, CTX) == []  # nothing changed since


def test_an_event_id_with_a_trailing_newline_is_dead_lettered() -> None:
    good = event("impression", T0, event_id="0b6f1f7e-6d0c-4a53-9d1e-2f1a3c4b5d6e")
    newline = {**good, "event_id": good["event_id"] + "\n", "timestamp_ms": T0 + 1}
    state, out = _run([record(good, 0), record(newline, 1)])
    assert [item[0] for item in out] == ["content", "dlq"]
    assert orjson.loads(out[1][2])["code"] == "invalid_uuid"
    assert state.counts.processed == 1 and state.counts.dlq == {"invalid_uuid": 1}


def test_a_batch_groups_title_updates_by_shard_and_keeps_sink_items_in_order() -> None:
    events = [event("impression", T0 + i, content=f"c{i % 5}") for i in range(20)]
    broken = [record(b"not json", 20), record(b"{", 21)]
    state = PartitionState.empty(RULES)
    routed = process_batch(
        state,
        [record(e, i) for i, e in enumerate(events)] + broken,
        validator=EventValidator(),
        rules=RULES,
        ctx=CTX,
        shards=3,
    )
    assert state.counts.processed == 20
    assert sorted(routed.contents) == sorted({shard_of(f"c{i}", 3) for i in range(5)})
    for shard, updates in routed.contents.items():
        assert all(shard_of(content_id, 3) == shard for content_id, *_ in updates)
        assert [ts for _, ts, _, _, _ in updates] == sorted(ts for _, ts, _, _, _ in updates)  # partition order kept
        assert [offset for *_, offset in updates] == sorted(offset for *_, offset in updates)
    assert sum(len(u) for u in routed.contents.values()) == 20
    assert [coords for _, _, coords in routed.dlq] == [("events", 0, 20), ("events", 0, 21)]
    assert all(type(coords) is tuple for _, _, coords in routed.dlq)  # a built-in tuple crosses workers
    assert routed.late == []
    assert shard_of("c1", 64) == zlib.crc32(b"c1") % 64


def _updates(offsets: range, content: str = "c1") -> list:
    return [(content, T0 + offset * MIN, "impression", None, offset) for offset in offsets]


def test_a_shard_skips_updates_it_already_folded_when_a_partition_replays_them() -> None:
    shard = ContentShardState()
    assert process_contents(shard, _updates(range(0, 5)), CTX, partition=0) == 0
    # the partition restarts from offset 3 while the shard already holds up to 4: 3 and 4 count once
    assert process_contents(shard, _updates(range(3, 8)), CTX, partition=0) == 2
    assert process_contents(shard, _updates(range(5, 8)), CTX, partition=0) == 3  # a whole batch again
    assert process_contents(shard, _updates(range(0, 3)), CTX, partition=1) == 0  # offsets are per partition
    assert shard.applied == {0: 7, 1: 2}
    (row,) = emit_contents(shard, CTX, everyone=True, as_of_ms=T0 + 8 * MIN)
    assert row["content_impressions_1h"] == 8 + 3


def test_replayed_updates_leave_the_same_rows_as_one_pass() -> None:
    once, replayed = ContentShardState(), ContentShardState()
    process_contents(once, _updates(range(0, 10)), CTX, partition=0)
    process_contents(replayed, _updates(range(0, 6)), CTX, partition=0)
    process_contents(replayed, _updates(range(2, 10)), CTX, partition=0)
    as_of = T0 + 10 * MIN
    assert emit_contents(replayed, CTX, everyone=True, as_of_ms=as_of) == emit_contents(
        once, CTX, everyone=True, as_of_ms=as_of
    )


def test_a_shard_snapshot_of_the_previous_layout_resumes() -> None:
    import pickle

    from flywheel.features.formulas import ContentState
    from flywheel.stream.processor import restore_shard, snapshot_shard

    current = ContentShardState()
    process_contents(current, _updates(range(0, 4)), CTX, partition=0)
    old = ContentShardState()
    process_contents(old, _updates(range(0, 4)), CTX, partition=0)
    for agg in old.contents.values():  # day buckets were ContentState objects, and no offsets were noted
        agg.buckets = {day: ContentState(*values) for day, values in agg.buckets.items()}
    del old.__dict__["applied"]
    resumed = restore_shard(pickle.dumps(old))
    assert restore_shard(snapshot_shard(current)) == current
    for shard in (current, resumed):
        process_contents(shard, _updates(range(4, 6)), CTX, partition=0)
    as_of = T0 + 6 * MIN
    assert emit_contents(resumed, CTX, everyone=True, as_of_ms=as_of) == emit_contents(
        current, CTX, everyone=True, as_of_ms=as_of
    )
