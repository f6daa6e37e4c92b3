"""Benchmark of the streaming features dataflow: events/s, full dataflow vs pass-through.

Simulates a day (with broken, duplicated, late and skewed events) into a local event log in a
temporary folder, then runs on the same input, in the same run:

* the pass-through dataflow: the same local-log source, JSON parsing of every record, a null
  sink (the engine's floor);
* the full dataflow: validation, DLQ, dedup, sessions, late routing, user and content features,
  the feature table and the reconciliation report.

Each is run with 1 and with 2 worker processes (each process times itself from the moment the
cluster is connected and its first source partition is built; a run's time is from the first
process's start to the last one's end). Prints events/s and the
ratio full / pass-through on one worker; the goal is >= 25 %. Exit status 0 unless a run fails.

    .venv/bin/python bench/bench_stream.py [--users N] [--repeat N] [--batch-size N]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOAL = 0.25


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _config(root: Path, users: int):  # noqa: ANN202 - FlywheelConfig, imported lazily
    from flywheel.config import load_config

    base = load_config(None)
    scenarios = base.simulator.scenarios.model_copy(
        update={
            name: getattr(base.simulator.scenarios, name).model_copy(update={"enabled": True})
            for name in ("broken_events", "duplicates", "late_events", "clock_skew")
        }
    )
    return base.model_copy(
        update={
            "home": root,
            "event_log": base.event_log.model_copy(
                update={"local": base.event_log.local.model_copy(update={"path": root / "log"})}
            ),
            "simulator": base.simulator.model_copy(
                update={
                    "users": users,
                    "items": 1000,
                    "days": 1,
                    "ground_truth_dir": root / "gt",
                    "scenarios": scenarios,
                }
            ),
        }
    )


def _worker(args: argparse.Namespace) -> None:
    """One dataflow process: build the flow, run it, write (events, start, end) as JSON."""
    import orjson
    from bytewax import operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.outputs import DynamicSink, StatelessSinkPartition
    from bytewax.run import cli_main

    from flywheel.config.streaming import StreamingConfig
    from streaming.dataflow import build_flow
    from streaming.settings import settings_from_config
    from streaming.sources import LocalLogSource

    class _Null(StatelessSinkPartition):
        def write_batch(self, items: list) -> None:
            pass

    class NullSink(DynamicSink):
        def build(self, step_id: str, worker_index: int, worker_count: int) -> _Null:
            return _Null()

    started: list[float] = []

    class TimedSource(LocalLogSource):
        """Notes when the first partition is built: the cluster is connected, reading starts."""

        def build_part(self, step_id: str, for_part: str, resume_state: int | None):  # noqa: ANN201
            if not started:
                started.append(time.time())
            return super().build_part(step_id, for_part, resume_state)

    root = Path(args.root)
    config = _config(root, args.users)
    source = TimedSource(root / "log", "events", batch_size=args.batch_size, until_end=True)
    if args.flow == "pass":

        def parse(rec: object) -> object:
            try:
                return orjson.loads(rec.value)  # type: ignore[attr-defined]
            except orjson.JSONDecodeError:
                return None

        flow = Dataflow("pass_through")
        parsed = op.map("parse", op.input("events", flow, source), parse)
        op.output("null", parsed, NullSink())
    else:
        out = root / f"out-{args.tag}"
        streaming = StreamingConfig(
            recovery=False,
            batch_size=args.batch_size,
            report_path=out / "report.json",
            features_table=out / "features.sqlite",
            emit_interval_seconds=5.0,
        )
        config = config.model_copy(
            update={
                "event_log": config.event_log.model_copy(
                    update={
                        "topics": config.event_log.topics.model_copy(
                            update={"dlq": f"dlq-{args.tag}", "late": f"late-{args.tag}"}
                        )
                    }
                )
            }
        )
        flow = build_flow(settings_from_config(config, streaming=streaming, source=source))
    addresses = args.addresses.split(",") if args.addresses else None
    cli_main(flow, workers_per_process=1, process_id=args.process_id, addresses=addresses)
    end = time.time()
    Path(args.result).write_text(json.dumps({"start": started[0] if started else end, "end": end}))


def _run(root: Path, flow: str, processes: int, args: argparse.Namespace, tag: str) -> float:
    """Seconds of one run (first start to last end over the processes)."""
    addresses = ",".join(f"127.0.0.1:{p}" for p in _free_ports(processes)) if processes > 1 else ""
    results = [root / f"result-{tag}-{i}.json" for i in range(processes)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = []
    for i in range(processes):
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            "--flow",
            flow,
            "--root",
            str(root),
            "--users",
            str(args.users),
            "--batch-size",
            str(args.batch_size),
            "--tag",
            tag,
            "--result",
            str(results[i]),
        ]
        if processes > 1:
            cmd += ["--process-id", str(i), "--addresses", addresses]
        procs.append(subprocess.Popen(cmd, cwd=REPO, env=env))
    for p in procs:
        if p.wait(timeout=900) != 0:
            raise SystemExit(f"a {flow} run with {processes} process(es) failed (exit {p.returncode})")
    times = [json.loads(r.read_text()) for r in results]
    return max(t["end"] for t in times) - min(t["start"] for t in times)


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=3000, help="simulated users (about 30 events per user-day)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each case; the best is kept")
    parser.add_argument("--batch-size", type=int, default=1000, help="records per read")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--flow", choices=("pass", "full"), help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--tag", default="", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--process-id", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--addresses", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return

    from flywheel.simulator.engine import simulate

    with tempfile.TemporaryDirectory(prefix="flywheel-bench-stream-") as tmp:
        root = Path(tmp)
        summary = simulate(_config(root, args.users), ground_truth=False)
        n = summary.events_written
        print(f"input: {n} records (1 simulated day, {args.users} users, faults on), batch size {args.batch_size}")
        rates: dict[tuple[str, int], float] = {}
        for processes in (1, 2):
            for flow in ("pass", "full"):
                best = min(_run(root, flow, processes, args, f"{flow}{processes}r{r}") for r in range(args.repeat))
                rates[(flow, processes)] = n / best
                print(f"{flow:>4} dataflow, {processes} process(es): {n / best:>10,.0f} events/s ({best:.2f} s)")
        report = json.loads((root / "out-full1r0" / "report.json").read_text())
        print(f"reconciliation (full, 1 process): {report['summary']}")
        ratio = rates[("full", 1)] / rates[("pass", 1)]
        verdict = "met" if ratio >= GOAL else "NOT met"
        print(f"full / pass-through, 1 worker: {ratio:.1%} (goal >= {GOAL:.0%}: {verdict})")
        print(
            f"2 vs 1 processes: pass-through x{rates[('pass', 2)] / rates[('pass', 1)]:.2f}, "
            f"full x{rates[('full', 2)] / rates[('full', 1)]:.2f} (cores: {os.cpu_count()})"
        )


if __name__ == "__main__":
    main()
