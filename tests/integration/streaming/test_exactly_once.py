"""Kill the dataflow with SIGKILL at random points and restart it: the outcome equals one run's."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest

from flywheel.events.local_log import LocalEventLog
from tests.integration.streaming.helpers import Run, clone, simulate_day, write_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KILLS = 4


def _written(run: Run, topic: str) -> int:
    log = LocalEventLog(run.folder / "log")
    return sum(log.end_offsets(topic).values()) if topic in log.topics() else 0


def _committed_this_execution(run: Run) -> bool:
    """Has the running execution committed an epoch past the one it resumed from (Bytewax 0.21's
    recovery store: ``exs`` holds each execution's resume epoch, ``fronts`` each worker's progress)?"""
    path = run.folder / "recovery" / "part-0.sqlite3"
    if not path.exists():
        return False
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            row = db.execute(
                "SELECT e.resume_epoch, MIN(f.worker_frontier) FROM exs e JOIN fronts f ON f.ex_num = e.ex_num"
                " WHERE e.ex_num = (SELECT MAX(ex_num) FROM exs) GROUP BY e.ex_num"
            ).fetchone()
    except sqlite3.OperationalError:  # not initialised yet, or busy
        return False
    return row is not None and row[1] > row[0]


def test_kill_and_restart_gives_the_uninterrupted_result(tmp_path: Path) -> None:
    config_path = write_config(tmp_path / "source")
    _, summary = simulate_day(config_path)
    assert summary.events_written > 20_000
    reference = Run(clone(config_path, tmp_path / "reference").parent)
    killed = Run(clone(config_path, tmp_path / "killed").parent)

    done = reference.start()
    out, _ = done.communicate(timeout=120)
    assert done.returncode == 0, out.decode()

    # kill when the dead-letter topic has grown by a random amount: a point inside consumption
    # however fast or slow the machine is, and once the run has committed an epoch (a kill before
    # the first commit restarts from where the previous run left, which proves less)
    rng = random.Random(20261129)
    kills = 0
    total_dlq = reference.report()["dlq"]
    for _ in range(KILLS):
        target = _written(killed, "events.dlq") + rng.randint(5, total_dlq // (KILLS + 2))
        proc = killed.start("--batch-size", "100", "--snapshot-interval", "0.1", "--emit-interval", "0.1")
        deadline = time.monotonic() + 60
        while (
            (_written(killed, "events.dlq") < target or not _committed_this_execution(killed))
            and proc.poll() is None
            and time.monotonic() < deadline
        ):
            time.sleep(0.005)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=30)
    assert kills >= 3, f"only {kills} kill(s) landed while the dataflow ran"
    final = killed.start()
    out, _ = final.communicate(timeout=120)
    assert final.returncode == 0, out.decode()

    expected_report, got_report = reference.report(), killed.report()
    assert expected_report["balanced"] and expected_report["received"] == summary.events_written
    # the totals equal one uninterrupted run's; the last run says it read only what was left
    run_keys = ("this_run", "run_summary")
    assert {k: v for k, v in got_report.items() if k not in run_keys} == {
        k: v for k, v in expected_report.items() if k not in run_keys
    }
    assert expected_report["this_run"]["received"] == summary.events_written
    assert got_report["this_run"]["received"] < summary.events_written
    assert got_report["this_run"]["balanced"]
    assert got_report["run_summary"].startswith(f"this run read {got_report['this_run']['received']} record(s)")
    assert killed.features() == reference.features()
    for topic in ("events.dlq", "events.late"):
        written = killed.topic(topic)
        assert Counter(written) == Counter(reference.topic(topic)), topic
        assert len(written) == len(set(written)), f"{topic} holds a record twice"
    assert len(killed.topic("events.dlq")) == expected_report["dlq"]
    assert len(killed.topic("events.late")) == expected_report["late"]
