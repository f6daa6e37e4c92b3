"""A slow sink slows the source instead of dropping events or buffering the topic; the lag shows it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import run_main

from flywheel.config.streaming import StreamingConfig
from monitoring.metrics import REGISTRY
from streaming.dataflow import build_flow
from streaming.settings import settings_from_config
from streaming.sinks import read_feature_table
from tests.integration.streaming.helpers import simulate_day, write_config

pytestmark = pytest.mark.integration

DELAY_S = 0.05


def _read() -> float:
    return REGISTRY.get_sample_value("flywheel_stream_events_in_total") or 0.0


class _Slow(StatelessSinkPartition[Any]):
    def __init__(self, sink: SlowSink) -> None:
        self._sink = sink

    def write_batch(self, items: list[Any]) -> None:
        # what the source had read, and had left unread in the log, when this write began
        self._sink.read_at_call.append(_read())
        self._sink.lag_at_call.append(_lag())
        time.sleep(DELAY_S)
        self._sink.seen.extend(items)


class SlowSink(DynamicSink[Any]):
    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.read_at_call: list[float] = []
        self.lag_at_call: list[float] = []

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Slow:
        return _Slow(self)


def _lag() -> float:
    name = "flywheel_stream_consumer_lag_events"
    return sum(REGISTRY.get_sample_value(name, {"topic": "events", "partition": str(p)}) or 0.0 for p in range(2))


def test_a_slow_sink_slows_the_source_and_the_lag_shows_it(tmp_path: Path) -> None:
    config, summary = simulate_day(write_config(tmp_path, users=80, partitions=2))
    streaming = StreamingConfig(
        recovery=False,
        batch_size=100,
        emit_interval_seconds=0.001,
        report_path=tmp_path / "report.json",
        features_table=tmp_path / "features.sqlite",
    )
    sink = SlowSink()
    settings = settings_from_config(config, streaming=streaming, feature_sinks=(sink,))
    read_before = _read()
    run_main(build_flow(settings))

    report = orjson.loads((tmp_path / "report.json").read_bytes())
    total = summary.events_written
    assert report["received"] == total and report["balanced"]
    read = [r - read_before for r in sink.read_at_call]
    during = [r for r in read if r < total]
    print(f"{len(read)} slow writes; {len(during)} began before the source had read all {total} records")
    # the source did not race ahead of the slow sink: most slow writes began while records were still
    # unread, and it read on in step with them (a source that buffered the topic would have read it
    # all before the second write)
    assert len(during) >= len(read) / 2 and len(during) >= total / 100 / 4
    assert read == sorted(read) and len(set(during)) >= len(during) / 2
    # ...and the lag shows the records it left in the log meanwhile, then 0 at the end
    assert max(sink.lag_at_call) >= 100
    assert _lag() == 0
    # the slow sink got every row the fast one did
    table = read_feature_table(tmp_path / "features.sqlite")
    assert {(view, row.get("user_id") or row["content_id"]) for view, row in sink.seen} == set(table)
    assert len(table) > 50
