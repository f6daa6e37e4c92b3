"""Over a simulated day with every fault on, the counts reconcile exactly, in the report and as metrics."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from bytewax.testing import run_main

from flywheel.config.streaming import StreamingConfig
from flywheel.events.local_log import LocalEventLog
from flywheel.events.validation import EventValidator
from monitoring.metrics import REGISTRY
from streaming.dataflow import build_flow
from streaming.settings import settings_from_config
from tests.integration.streaming.helpers import simulate_day, write_config

pytestmark = pytest.mark.integration

METRICS = {
    "received": "flywheel_stream_events_in_total",
    "processed": "flywheel_stream_events_processed_total",
    "late": "flywheel_stream_events_late_total",
    "duplicates": "flywheel_stream_events_duplicate_total",
}


def _metric(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def _naive_counts(log: LocalEventLog, lateness_ms: int) -> tuple[int, int]:
    """(duplicates, late) counted naively: an id seen before among the valid records (with no horizon);
    an event behind the newest earlier event of its user by more than the lateness."""
    validator = EventValidator()
    newest: dict[str, int] = {}
    seen: set[str] = set()
    late = duplicates = 0
    for p in range(log.topic_partitions("events")):
        for rec in log.read("events", p, 0, 10_000_000):
            event = validator.validate_bytes(rec.value, now_ms=rec.timestamp_ms).event
            if event is None:
                continue
            if event["event_id"] in seen:
                duplicates += 1
                continue
            seen.add(event["event_id"])
            user, ts = event["user_id"], event["timestamp_ms"]
            if user in newest and ts < newest[user] - lateness_ms:
                late += 1
            else:
                newest[user] = max(ts, newest.get(user, ts))
    return duplicates, late


def test_in_equals_processed_plus_dlq_plus_late_plus_duplicates(tmp_path: Path) -> None:
    config, summary = simulate_day(write_config(tmp_path, users=400))
    streaming = StreamingConfig(
        recovery=False, report_path=tmp_path / "report.json", features_table=tmp_path / "features.sqlite"
    )
    before = {key: _metric(name) for key, name in METRICS.items()}
    dlq_before = {code: _metric("flywheel_stream_events_dlq_total", {"code": code}) for code in ("malformed_json",)}
    run_main(build_flow(settings_from_config(config, streaming=streaming)))

    report = orjson.loads((tmp_path / "report.json").read_bytes())
    log = LocalEventLog(config.event_log.local.path)
    assert report["received"] == summary.events_written
    assert report["received"] == report["processed"] + report["dlq"] + report["late"] + report["duplicates"]
    assert report["balanced"]
    # against what the simulator says it did
    assert report["dlq"] == summary.delivery.broken > 0
    duplicates, late = _naive_counts(log, streaming.allowed_lateness_ms)
    assert report["duplicates"] == duplicates > 0
    assert report["late"] == late > 0
    # the simulator's copies, less those its broken-events scenario damaged (dead-lettered instead)
    assert summary.delivery.duplicates - summary.delivery.broken <= report["duplicates"] <= summary.delivery.duplicates
    assert 0 < report["late"] < summary.delivery.late  # some delayed events are within the lateness
    # every broken kind of the simulator has its own code
    assert set(report["dlq_by_code"]) == {
        "malformed_json",
        "wrong_type",
        "unknown_event_type",
        "missing_field",
        "negative_value",
        "future_timestamp",
    }
    assert report["summary"].startswith(f"in {summary.events_written} = processed {report['processed']}")
    # the topics hold exactly what the report counts, with reasons and payloads
    letters = [orjson.loads(r.value) for p in range(4) for r in log.read("events.dlq", p, 0, 100_000)]
    late = [orjson.loads(r.value) for p in range(4) for r in log.read("events.late", p, 0, 100_000)]
    assert (len(letters), len(late)) == (report["dlq"], report["late"])
    assert all(x["reason"] and ("payload" in x or "payload_b64" in x) and x["topic"] == "events" for x in letters)
    assert len({(x["partition"], x["offset"]) for x in letters + late}) == len(letters) + len(late)
    # and so do the metrics
    for key, name in METRICS.items():
        assert _metric(name) - before[key] == report[key], name
    malformed = _metric("flywheel_stream_events_dlq_total", {"code": "malformed_json"}) - dlq_before["malformed_json"]
    assert malformed == report["dlq_by_code"]["malformed_json"]
    assert _metric("flywheel_stream_run_balanced") == 1.0
    assert _metric("flywheel_stream_run_events", {"outcome": "in"}) == summary.events_written
