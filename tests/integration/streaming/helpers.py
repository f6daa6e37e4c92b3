"""A simulated day in a local log, and runs of ``flywheel stream`` as subprocesses."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from flywheel.config import load_config
from flywheel.config.models import FlywheelConfig
from flywheel.events.local_log import LocalEventLog
from flywheel.simulator.engine import SimulationSummary, simulate
from streaming.sinks import read_feature_table

REPO = Path(__file__).resolve().parents[3]


def write_config(folder: Path, *, users: int = 800, partitions: int = 4, extra: dict[str, Any] | None = None) -> Path:
    """A Flywheel YAML config: a local log under ``folder`` and a one-day simulation with faults."""
    data: dict[str, Any] = {
        "home": str(folder),
        "event_log": {"partitions": partitions, "local": {"path": str(folder / "log")}},
        "simulator": {
            "users": users,
            "items": 300,
            "days": 1,
            "ground_truth_dir": str(folder / "gt"),
            "scenarios": {
                "broken_events": {"enabled": True, "rate": 0.01},
                "duplicates": {"enabled": True},
                "late_events": {"enabled": True},
                "clock_skew": {"enabled": True},
            },
        },
        **(extra or {}),
    }
    path = folder / "flywheel.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def simulate_day(config_path: Path, *, ground_truth: bool = False) -> tuple[FlywheelConfig, SimulationSummary]:
    """Write the configured simulated day into the events topic (and the ground truth, if asked)."""
    config = load_config(config_path)
    return config, simulate(config, ground_truth=ground_truth)


def clone(config_path: Path, folder: Path) -> Path:
    """A copy of the config whose log holds only the events topic of the original."""
    data = yaml.safe_load(config_path.read_text())
    source = Path(data["event_log"]["local"]["path"]) / "events"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, folder / "log" / "events")
    shutil.rmtree(folder / "log" / "events" / "_groups", ignore_errors=True)
    data["home"] = str(folder)
    data["event_log"]["local"]["path"] = str(folder / "log")
    path = folder / "flywheel.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@dataclass(frozen=True)
class Run:
    """The files of one dataflow run."""

    folder: Path

    @property
    def config(self) -> Path:
        return self.folder / "flywheel.yaml"

    def args(self, *extra: str) -> list[str]:
        """The ``flywheel stream`` command line of this run."""
        return [
            sys.executable,
            "-m",
            "flywheel.cli.main",
            "stream",
            "--config",
            str(self.config),
            "--recovery-dir",
            str(self.folder / "recovery"),
            "--report",
            str(self.folder / "report.json"),
            "--features-table",
            str(self.folder / "features.sqlite"),
            "--no-feast",
            *extra,
        ]

    def start(self, *extra: str) -> subprocess.Popen[bytes]:
        """Start the run as a subprocess, in a session of its own (see :meth:`kill`)."""
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        return subprocess.Popen(
            self.args(*extra),
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @staticmethod
    def kill(proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL a run started by :meth:`start` and every process it started (its session)."""
        os.killpg(proc.pid, signal.SIGKILL)

    def finish(self, *extra: str, timeout_s: float = 300) -> str:
        """Run to the end; returns the output (fails the test on a non-zero exit)."""
        proc = self.start(*extra)
        out, _ = proc.communicate(timeout=timeout_s)
        assert proc.returncode == 0, out.decode()
        return out.decode()

    def report(self) -> dict[str, Any]:
        return orjson.loads((self.folder / "report.json").read_bytes())

    def features(self) -> dict[tuple[str, str], dict[str, Any]]:
        return read_feature_table(self.folder / "features.sqlite")

    def topic(self, name: str) -> list[bytes]:
        """Every value of a topic of this run's log, partition by partition."""
        log = LocalEventLog(self.folder / "log")
        if name not in log.topics():
            return []
        out = []
        for partition, end in sorted(log.end_offsets(name).items()):
            offset = 0
            while offset < end:
                batch = log.read(name, partition, offset, 10_000)
                out.extend(r.value for r in batch)
                offset = batch[-1].offset + 1
        return out


def add_hostile_records(config_path: Path, *, partitions: int) -> int:
    """Append hostile records to the events topic; returns how many.

    Non-UTF-8 bytes, 3 MiB frames (a valid event with a huge field, and junk), JSON nested 10,000
    deep, and valid events whose user, session and content ids are non-ASCII (spread over the
    partitions by their UTF-8 bytes).
    """
    import random
    import uuid

    from tests.unit.stream.events import event

    config = load_config(config_path)
    rng = random.Random(15)
    log = LocalEventLog(config.event_log.local.path, partitions=partitions)
    ends = log.end_offsets("events")
    end = max(rec.timestamp_ms for p, n in ends.items() if n for rec in log.read("events", p, n - 1, 1))
    producer = log.producer("events")
    messages: list[tuple[str | bytes | None, bytes, int | None]] = []
    for i in range(40):
        messages.append((f"u{i}", bytes(rng.randrange(128, 256) for _ in range(rng.randint(1, 300))), end))
    huge = event("impression", end, user="u-huge", event_id=str(uuid.UUID(int=rng.getrandbits(128))))
    messages.append(("u-huge", orjson.dumps({**huge, "query": "q" * (3 * 1024 * 1024)}), end))
    messages.append(("u-junk", b"\x00\xff" * (3 * 1024 * 1024 // 2), end))
    messages.append(("u-deep", b"[" * 10_000 + b"]" * 10_000, end))
    messages.append(("u-deep-obj", b'{"a":' * 10_000 + b"1" + b"}" * 10_000, end))
    for i in range(150):
        user = f"用户-ü-🎬-{i % 30}"
        kind = rng.choice(["impression", "playback.started", "playback.stopped"])
        ts = end - rng.randint(0, 3_600_000)
        payload = event(
            kind,
            ts,
            user=user,
            content=f"片-{i % 7}-é",
            watch=10.0 if kind == "playback.stopped" else None,
            event_id=str(uuid.UUID(int=rng.getrandbits(128))),
        )
        payload["session_id"] = f"会话-{i % 30}"
        messages.append((user, orjson.dumps(payload), ts))
    producer.send_many(messages)
    producer.close()
    return len(messages)
