"""A restarted `flywheel stream` says what this run read, and the totals since the first run."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from flywheel.config import load_config
from flywheel.events.local_log import LocalEventLog
from tests.integration.streaming.helpers import Run, simulate_day, write_config
from tests.unit.stream.events import T0, event

pytestmark = pytest.mark.integration


def _finish(run: Run) -> str:
    proc = run.start()
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out.decode()
    return out.decode()


def test_a_restart_reports_this_runs_reads_and_the_totals(tmp_path: Path) -> None:
    config_path = write_config(tmp_path, users=60, partitions=2)
    _, summary = simulate_day(config_path)
    n = summary.events_written
    run = Run(tmp_path)

    first = _finish(run)
    assert f"this run read {n} record(s)" in first
    assert f"totals since the first run: in {n} = " in first

    again = _finish(run)  # nothing new: it reads nothing and says so, with the same totals
    assert "this run read 0 record(s): processed 0, dlq 0, late 0, duplicates 0" in again
    assert f"totals since the first run: in {n} = " in again

    log = LocalEventLog(load_config(config_path).event_log.local.path, partitions=2)
    producer = log.producer("events")
    for i in range(3):
        producer.send(f"new-{i}", orjson.dumps(event("impression", T0 + i, user=f"new-{i}")), T0 + i)
    producer.send("new-0", b"{broken", T0)
    log.close()
    third = _finish(run)
    assert "this run read 4 record(s): processed 3, dlq 1, late 0, duplicates 0" in third
    assert f"totals since the first run: in {n + 4} = " in third
    report = run.report()
    assert report["received"] == n + 4 and report["this_run"]["received"] == 4 and report["balanced"]
