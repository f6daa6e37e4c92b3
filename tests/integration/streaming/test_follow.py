"""In follow mode the dataflow keeps reading the events topic and processes what is appended later."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import orjson
import pytest

from flywheel.config import load_config
from flywheel.events.local_log import LocalEventLog
from tests.integration.streaming.helpers import Run, write_config
from tests.unit.stream.events import T0, event

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _users(table: Path) -> set[str]:
    if not table.exists():
        return set()
    try:
        with sqlite3.connect(table, timeout=5) as db:
            return {e for (e,) in db.execute("SELECT entity FROM features WHERE view = 'user_stream_features'")}
    except sqlite3.OperationalError:  # the table is not created yet
        return set()


def _append(config_path: Path, user: str, ts: int) -> None:
    log = LocalEventLog(load_config(config_path).event_log.local.path, partitions=2)
    producer = log.producer("events")
    producer.send(user, orjson.dumps(event("playback.started", ts, user=user)), ts)
    log.close()


def _wait_for(user: str, table: Path, proc: object, timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:  # type: ignore[attr-defined]
        if user in _users(table):
            return True
        time.sleep(0.05)
    return False


def test_events_appended_while_following_are_processed(tmp_path: Path) -> None:
    config_path = write_config(tmp_path, partitions=2)
    _append(config_path, "u-early", T0)
    run = Run(tmp_path)
    proc = run.start("--follow", "--emit-interval", "0.1", "--snapshot-interval", "0.2")
    try:
        table = tmp_path / "features.sqlite"
        assert _wait_for("u-early", table, proc)
        _append(config_path, "u-later", T0 + 60_000)
        assert _wait_for("u-later", table, proc)
        assert proc.poll() is None  # still following
    finally:
        os.kill(proc.pid, signal.SIGTERM if proc.poll() is None else 0)
        proc.communicate(timeout=30)


def test_stopping_a_following_cluster_stops_every_process(tmp_path: Path) -> None:
    config_path = write_config(tmp_path, partitions=2)
    _append(config_path, "u-early", T0)
    run = Run(tmp_path)
    proc = run.start("--follow", "--processes", "2", "--emit-interval", "0.1", "--snapshot-interval", "0.2")
    try:
        assert _wait_for("u-early", tmp_path / "features.sqlite", proc, timeout_s=60)
        os.kill(proc.pid, signal.SIGTERM)  # the command only, as Kubernetes stops a pod's main process
        proc.communicate(timeout=30)
        deadline = time.monotonic() + 20
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _group_alive(proc.pid), "a stream process outlived the command"
    finally:
        if _group_alive(proc.pid):
            Run.kill(proc)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
