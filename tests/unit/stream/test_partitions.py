"""The per-partition step inside the source partition: what it emits, its snapshot, old recovery data."""

from __future__ import annotations

import os
from typing import Any

import pytest
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from flywheel.events.log import Record
from flywheel.events.validation import EventValidator
from flywheel.features import formulas as f
from flywheel.stream.features import FeatureContext
from flywheel.stream.processor import StreamRules
from streaming.partitions import USER_VIEW, PartitionOptions, ProcessingSource
from tests.unit.stream.events import MIN, T0, event, record

OPTIONS = PartitionOptions(
    validator=EventValidator(),
    rules=StreamRules(),
    context=FeatureContext(vocab=f.GenreVocabulary(("drama",)), allowed_lateness_ms=10 * MIN),
    content_shards=4,
    emit_interval_s=3600.0,
    as_of_end_ms=None,
)


class _ListPartition(StatefulSourcePartition[Record, int]):
    def __init__(self, records: list[Record], offset: int) -> None:
        self._records = records
        self._offset = offset

    def next_batch(self) -> list[Record]:
        if self._offset >= len(self._records):
            raise StopIteration
        batch = self._records[self._offset : self._offset + 2]
        self._offset += len(batch)
        return batch

    def snapshot(self) -> int:
        return self._offset


class _ListSource(FixedPartitionedSource[Record, int]):
    def __init__(self, records: list[Record]) -> None:
        self._records = records

    def list_parts(self) -> list[str]:
        return ["0"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _ListPartition:
        return _ListPartition(self._records, resume_state or 0)


def _drain(part: Any) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    while True:
        try:
            out.extend(part.next_batch())
        except StopIteration:
            return out


RECORDS = [
    record(event("impression", T0, user="u1", content="c1"), 0),
    record(b"{broken", 1),
    record(event("playback.started", T0 + MIN, user="u1", content="c2"), 2),
    record(event("impression", T0 + 2 * MIN, user="u2", content="c1"), 3),
]


def test_a_partition_emits_batches_of_builtin_tuples_then_its_rows_and_counts() -> None:
    source = ProcessingSource(_ListSource(RECORDS), None, OPTIONS)
    out = _drain(source.build_part("events", "0", None))
    pid = os.getpid()
    content = [item for item in out if item[0] == "content"]
    assert {item[1] for item in content} <= {"c0", "c1", "c2", "c3"}
    assert all(item[2] == pid and item[3] == 0 and type(item[4]) is list for item in content)
    assert sorted(update[0] for item in content for update in item[4]) == ["c1", "c1", "c2"]
    assert sorted(update[4] for item in content for update in item[4]) == [0, 2, 3]  # source offsets
    (dlq,) = [item for item in out if item[0] == "dlq"]
    assert dlq[1] == pid and [coords for _, _, coords in dlq[2]] == [("events", 0, 1)]
    rows = [row for item in out if item[0] == "rows" for row in item[2]]
    assert [item[1] for item in out if item[0] == "rows"] == [USER_VIEW]
    assert sorted(row["user_id"] for row in rows) == ["u1", "u2"]
    (counts,) = [item for item in out if item[0] == "counts"]
    assert counts[1] == "0" and counts[2]["received"] == 4 and counts[3]["received"] == 4
    assert counts[2]["dlq_by_code"] == {"malformed_json": 1} and counts[2]["balanced"]


def test_resuming_from_a_snapshot_continues_with_the_state_and_counts_this_run_apart() -> None:
    source = ProcessingSource(_ListSource(RECORDS), None, OPTIONS)
    first = source.build_part("events", "0", None)
    first.next_batch()  # two records
    snapshot = first.snapshot()
    assert snapshot[0] == 2 and isinstance(snapshot[1], bytes)
    first.next_batch()  # changes after the snapshot do not leak into it
    resumed = source.build_part("events", "0", snapshot)
    (counts,) = [item for item in _drain(resumed) if item[0] == "counts"]
    assert counts[2]["received"] == 4 and counts[3]["received"] == 2
    assert counts[3]["processed"] == 2 and counts[3]["dlq"] == 0


def test_recovery_data_of_the_older_layout_gets_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    source = ProcessingSource(_ListSource(RECORDS), None, OPTIONS)
    with pytest.raises(RuntimeError, match=r"older version.*--fresh"):
        source.build_part("events", "0", 1234)
    assert "older version" in capsys.readouterr().err
