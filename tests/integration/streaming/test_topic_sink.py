"""The topic sink skips what a crashed run wrote, even across a second crash before the replay got there."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from flywheel.events.local_log import LocalEventLog
from streaming.sinks import TopicSink
from tests.integration.streaming.helpers import Run

pytestmark = pytest.mark.integration


def _item(offset: int) -> tuple[bytes, bytes, tuple[str, int, int]]:
    coords = ("events", 0, offset)
    return b"u1", orjson.dumps({"reason": "test", "topic": "events", "partition": 0, "offset": offset}), coords


def test_two_crashes_in_a_row_write_nothing_twice(tmp_path: Path) -> None:
    sink = TopicSink(lambda: LocalEventLog(tmp_path / "log", partitions=2), "events.dlq")
    pid = os.getpid()
    first = sink.build_part("dlq_out", "all", None)
    first.write_batch([(pid, [_item(1), _item(2)])])
    snapshot = first.snapshot()
    first.write_batch([(pid, [_item(3), _item(4)])])  # written, then the run crashes before its next snapshot
    first.close()

    second = sink.build_part("dlq_out", "all", snapshot)  # the replay starts after offset 2 of the source
    second.write_batch([(pid, [_item(3)])])  # replayed: skipped
    snapshot = second.snapshot()  # offset 4 not replayed yet, but already in the topic
    second.close()  # ...and this run crashes too

    third = sink.build_part("dlq_out", "all", snapshot)
    third.write_batch([(pid, [_item(4), _item(5)])])
    third.close()

    written = [orjson.loads(v)["offset"] for v in Run(tmp_path).topic("events.dlq")]
    assert sorted(written) == [1, 2, 3, 4, 5]
