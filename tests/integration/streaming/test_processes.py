"""Several processes give the one-process result, exactly once across kills, on a hostile corpus.

The corpus is a simulated day with every fault on, plus non-UTF-8 bytes, 3 MiB frames, JSON
nested 10,000 deep and non-ASCII ids. Runs are `flywheel stream --processes N` subprocesses.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import pytest

from flywheel.events.local_log import LocalEventLog
from tests.integration.streaming.helpers import Run, add_hostile_records, clone, simulate_day, write_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 8
RUN_KEYS = ("this_run", "run_summary")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """The source config and how many records its events topic holds."""
    folder = tmp_path_factory.mktemp("corpus")
    config_path = write_config(folder, users=720, partitions=PARTITIONS)
    _, summary = simulate_day(config_path)
    hostile = add_hostile_records(config_path, partitions=PARTITIONS)
    assert summary.events_written + hostile >= 20_000
    return config_path, summary.events_written + hostile


@pytest.fixture(scope="module")
def reference(corpus: tuple[Path, int], tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One uninterrupted run in one process."""
    run = Run(clone(corpus[0], tmp_path_factory.mktemp("one")).parent)
    run.finish()
    return run


def _totals(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in RUN_KEYS}


def _assert_same_outcome(got: Run, expected: Run, records: int) -> None:
    report = got.report()
    assert report["received"] == records and report["balanced"], report["summary"]
    assert _totals(report) == _totals(expected.report())
    assert got.features() == expected.features()
    for topic in ("events.dlq", "events.late"):
        written = got.topic(topic)
        assert Counter(written) == Counter(expected.topic(topic)), topic
        assert len(written) == len(set(written)), f"{topic} holds a record twice"
    assert len(got.topic("events.dlq")) == report["dlq"] and len(got.topic("events.late")) == report["late"]


def test_the_hostile_corpus_reconciles_in_one_process(reference: Run, corpus: tuple[Path, int]) -> None:
    report = reference.report()
    assert report["received"] == corpus[1] and report["balanced"]
    assert report["dlq_by_code"]["malformed_json"] >= 40 + 3  # the non-UTF-8, junk and deep frames
    huge = [len(v) for v in reference.topic("events.dlq") if len(v) > 3 * 1024 * 1024]
    assert len(huge) >= 1  # the 3 MiB junk frame, dead-lettered whole
    users = {entity for view, entity in reference.features() if view == "user_stream_features"}
    assert any(user.startswith("用户-ü-🎬-") for user in users)


@pytest.mark.parametrize("processes", [2, 4])
def test_processes_give_the_one_process_result(
    processes: int, reference: Run, corpus: tuple[Path, int], tmp_path: Path
) -> None:
    run = Run(clone(corpus[0], tmp_path / "run").parent)
    out = run.finish("--processes", str(processes))
    assert f"this run read {corpus[1]} record(s)" in out
    _assert_same_outcome(run, reference, corpus[1])


def _written(run: Run, topic: str) -> int:
    log = LocalEventLog(run.folder / "log")
    return sum(log.end_offsets(topic).values()) if topic in log.topics() else 0


@pytest.mark.parametrize("processes", [2, 4])
def test_kills_of_every_process_give_the_uninterrupted_result(
    processes: int, reference: Run, corpus: tuple[Path, int], tmp_path: Path
) -> None:
    run = Run(clone(corpus[0], tmp_path / "run").parent)
    rng = random.Random(processes)
    total_dlq = reference.report()["dlq"]
    kills = 0
    for _ in range(3):
        target = _written(run, "events.dlq") + rng.randint(3, total_dlq // 5)
        proc = run.start(
            "--processes",
            str(processes),
            "--batch-size",
            "100",
            "--snapshot-interval",
            "0.1",
            "--emit-interval",
            "0.1",
        )
        deadline = time.monotonic() + 90
        while _written(run, "events.dlq") < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        if proc.poll() is None:
            Run.kill(proc)
            kills += 1
        proc.communicate(timeout=30)
    assert kills >= 2, f"only {kills} kill(s) landed while the dataflow ran"
    run.finish("--processes", str(processes))
    _assert_same_outcome(run, reference, corpus[1])
