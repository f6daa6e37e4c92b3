"""A slow sink slows the source instead of dropping events; the lag is exported as a metric."""

from __future__ import annotations

import threading
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


class _Slow(StatelessSinkPartition[Any]):
    def __init__(self, seen: list[Any], calls: list[int]) -> None:
        self._seen = seen
        self._calls = calls

    def write_batch(self, items: list[Any]) -> None:
        time.sleep(DELAY_S)
        self._calls.append(len(items))
        self._seen.extend(items)


class SlowSink(DynamicSink[Any]):
    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.calls: list[int] = []

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Slow:
        return _Slow(self.seen, self.calls)


def _lag() -> float:
    name = "flywheel_stream_consumer_lag_events"
    return sum(REGISTRY.get_sample_value(name, {"topic": "events", "partition": str(p)}) or 0.0 for p in range(2))


def test_a_slow_sink_slows_the_source_and_the_lag_shows_it(tmp_path: Path) -> None:
    config, summary = simulate_day(write_config(tmp_path, users=80, partitions=2))
    streaming = StreamingConfig(
        recovery=False, batch_size=100, emit_interval_seconds=0.001,
        report_path=tmp_path / "report.json", features_table=tmp_path / "features.sqlite",
    )
    sink = SlowSink()
    settings = settings_from_config(config, streaming=streaming, feature_sinks=(sink,))
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(_lag())
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    began = time.perf_counter()
    run_main(build_flow(settings))
    elapsed = time.perf_counter() - began
    stop.set()
    sampler.join()

    report = orjson.loads((tmp_path / "report.json").read_bytes())
    assert report["received"] == summary.events_written and report["balanced"]
    batches = summary.events_written / 100
    print(f"sink calls {len(sink.calls)} for {batches:.0f} source batches in {elapsed:.2f} s")
    assert len(sink.calls) >= batches / 8  # the sink was called as the source went, not once at the end...
    assert elapsed >= len(sink.calls) * DELAY_S  # ...and every slow write held up the dataflow
    assert max(samples) > 0  # ...and the source waited behind it: events piled up in the log
    assert _lag() == 0
    # the slow sink got every row the fast one did
    table = read_feature_table(tmp_path / "features.sqlite")
    assert {(view, row.get("user_id") or row["content_id"]) for view, row in sink.seen} == set(table)
    assert len(table) > 50
