"""Benchmark of the streaming features dataflow: does it scale out with processes?

Simulates a day (with broken, duplicated, late and skewed events) into a local event log of
8 partitions in a temporary folder, then runs three dataflows on the same input, in the same
run, each with 1, 2 and 4 worker processes (one worker each, one Bytewax cluster on 127.0.0.1):

* ``pass``: the local-log source, JSON parsing of every record, a null sink: the engine's floor
  without any exchange between workers;
* ``keyed``: the same, then every parsed event keyed by its user and sent to a stateful no-op
  step: the floor of a dataflow that routes events by key (Bytewax places a key on a worker by
  its hash, so with n processes about (n-1)/n of the events cross processes);
* ``full``: the streaming features dataflow (validation, DLQ, dedup, sessions, late routing,
  user features inside the source partition; per-title features on 64 shards; the feature
  table and the report).

Each process times itself from the moment the cluster is connected and its first source
partition is built; a run's time is from the first process's start to the last one's end (and its
CPU seconds, summed over its processes, a second view when the machine is not idle).
Prints events/s, the speed-up over one process, the events exchanged between processes (items
a step received from another process) and the records each process read (its load).

Goals (same run): full with 2 processes >= 1.6 x full with 1; full with 1 process >= 50 % of
the keyed floor with 1. The figures depend on the machine being otherwise idle. Exit status 0
unless a run fails.

    PYTHONPATH=. .venv/bin/python bench/bench_stream.py [--users N] [--repeat N] [--batch-size N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PARTITIONS = 8
PROCESSES = (1, 2, 4)
FLOWS = ("pass", "keyed", "full")
SCALE_GOAL = 1.6
FLOOR_GOAL = 0.5


def _config(root: Path, users: int) -> Any:
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
                update={
                    "partitions": PARTITIONS,
                    "local": base.event_log.local.model_copy(update={"path": root / "log"}),
                }
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
    """One dataflow process: build the flow, run it, write its timings and counts as JSON."""
    import orjson
    from bytewax import operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.operators import StatefulBatchLogic
    from bytewax.outputs import DynamicSink, StatelessSinkPartition
    from bytewax.run import cli_main

    from flywheel.config.streaming import StreamingConfig
    from monitoring.metrics import REGISTRY
    from streaming.dataflow import build_flow
    from streaming.settings import settings_from_config
    from streaming.sources import LocalLogSource

    pid = os.getpid()
    started: list[float] = []
    cpu_started: list[float] = []
    read = [0]
    exchanged = [0]

    class _Null(StatelessSinkPartition[Any]):
        def write_batch(self, items: list[Any]) -> None:
            pass

    class NullSink(DynamicSink[Any]):
        def build(self, step_id: str, worker_index: int, worker_count: int) -> _Null:
            return _Null()

    class TimedSource(LocalLogSource):
        """Notes when the first partition is built: the cluster is connected, reading starts."""

        def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> Any:
            if not started:
                started.append(time.time())
                cpu_started.append(time.process_time())
            return super().build_part(step_id, for_part, resume_state)

    class NoOp(StatefulBatchLogic[Any, Any, None]):
        def on_batch(self, values: list[Any]) -> tuple[list[Any], bool]:
            exchanged[0] += sum(1 for sender, _ in values if sender != pid)
            return [], False

        def snapshot(self) -> None:
            return None

    def parse(rec: Any) -> Any:
        read[0] += 1
        try:
            return orjson.loads(rec.value)
        except orjson.JSONDecodeError:
            return None

    root = Path(args.root)
    config = _config(root, args.users)
    source = TimedSource(root / "log", "events", batch_size=args.batch_size, until_end=True)
    if args.flow in ("pass", "keyed"):
        flow = Dataflow(f"bench_{args.flow}")
        records = op.input("events", flow, source)
        if args.flow == "pass":
            op.output("null", op.map("parse", records, parse), NullSink())
        else:
            keyed = op.map(
                "parse_and_key", records, lambda rec: ((rec.key or b"").decode("utf-8", "replace"), (pid, parse(rec)))
            )
            op.output("null", op.stateful_batch("noop", keyed, lambda _: NoOp()), NullSink())
    else:
        out = root / f"out-{args.tag}"
        streaming = StreamingConfig(
            recovery=False,
            batch_size=args.batch_size,
            report_path=out / "report.json",
            features_table=out / "features.sqlite",
            emit_interval_seconds=5.0,
        )
        topics = config.event_log.topics.model_copy(update={"dlq": f"dlq-{args.tag}", "late": f"late-{args.tag}"})
        config = config.model_copy(update={"event_log": config.event_log.model_copy(update={"topics": topics})})
        flow = build_flow(settings_from_config(config, streaming=streaming, source=source))
    addresses = args.addresses.split(",") if args.addresses else None
    cli_main(flow, workers_per_process=1, process_id=args.process_id, addresses=addresses)
    end = time.time()
    cpu = time.process_time() - (cpu_started[0] if cpu_started else time.process_time())
    if args.flow == "full":
        read[0] = int(REGISTRY.get_sample_value("flywheel_stream_events_in_total") or 0)
        exchanged[0] = int(
            sum(
                sample.value
                for metric in REGISTRY.collect()
                if metric.name == "flywheel_stream_exchanged_items"
                for sample in metric.samples
                if sample.name.endswith("_total")
            )
        )
    result = {
        "start": started[0] if started else end,
        "end": end,
        "cpu": cpu,
        "read": read[0],
        "exchanged": exchanged[0],
    }
    Path(args.result).write_text(json.dumps(result))


def _run(root: Path, flow: str, processes: int, args: argparse.Namespace, tag: str) -> dict[str, Any]:
    """One run: its seconds (first start to last end), records read per process, events exchanged."""
    from streaming.cluster import local_addresses

    addresses = ",".join(local_addresses(processes)) if processes > 1 else ""
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
    parts = [json.loads(r.read_text()) for r in results]
    return {
        "seconds": max(t["end"] for t in parts) - min(t["start"] for t in parts),
        "cpu": sum(t["cpu"] for t in parts),
        "read": [t["read"] for t in parts],
        "exchanged": sum(t["exchanged"] for t in parts),
    }


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=6000, help="simulated users (about 30 events per user-day)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each case; the fastest is kept")
    parser.add_argument("--batch-size", type=int, default=1000, help="records per read")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--flow", choices=FLOWS, help=argparse.SUPPRESS)
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
        load = os.getloadavg()[0]
        print(
            f"input: {n:,} records in {PARTITIONS} partitions (1 simulated day, {args.users} users, faults on), "
            f"batch size {args.batch_size}; {os.cpu_count()} cores, load average {load:.2f} at the start"
        )
        header = (
            f"{'flow':>6} {'procs':>5} {'events/s':>10} {'x 1 proc':>8} {'seconds':>8} {'cpu s':>6} {'exchanged':>10}"
        )
        print(f"{header}  read per process")
        runs: dict[tuple[str, int], dict[str, Any]] = {}
        for flow in FLOWS:
            for processes in PROCESSES:
                best = min(
                    (_run(root, flow, processes, args, f"{flow}{processes}r{r}") for r in range(args.repeat)),
                    key=lambda run: run["seconds"],
                )
                runs[(flow, processes)] = best
                rate = n / best["seconds"]
                speedup = runs[(flow, 1)]["seconds"] / best["seconds"]
                shares = " ".join(f"{r / max(1, sum(best['read'])):.0%}" for r in best["read"])
                print(
                    f"{flow:>6} {processes:>5} {rate:>10,.0f} {speedup:>7.2f}x {best['seconds']:>8.2f} "
                    f"{best['cpu']:>6.2f} "
                    f"{best['exchanged']:>10,}  {shares}",
                    flush=True,
                )
        report = json.loads((root / "out-full1r0" / "report.json").read_text())
        print(f"reconciliation (full, 1 process): {report['summary']}")
        for processes in PROCESSES[1:]:
            other = json.loads((root / f"out-full{processes}r0" / "report.json").read_text())
            same = {k: v for k, v in other.items() if k not in ("this_run", "run_summary")} == {
                k: v for k, v in report.items() if k not in ("this_run", "run_summary")
            }
            print(f"reconciliation (full, {processes} processes) equals one process's: {same}")
        scale = runs[("full", 1)]["seconds"] / runs[("full", 2)]["seconds"]
        floor = runs[("keyed", 1)]["seconds"] / runs[("full", 1)]["seconds"]
        verdict = "met" if scale >= SCALE_GOAL else "NOT met"
        print(f"full, 2 processes vs 1: x{scale:.2f} (goal >= x{SCALE_GOAL}: {verdict})")
        print(
            f"full vs keyed floor, 1 process: {floor:.1%} (goal >= {FLOOR_GOAL:.0%}: "
            f"{'met' if floor >= FLOOR_GOAL else 'NOT met'})"
        )
        cpu_floor = runs[("keyed", 1)]["cpu"] / runs[("full", 1)]["cpu"]
        print(
            f"the same in CPU seconds of the process (less sensitive to other load on the machine): {cpu_floor:.1%}; "
            f"load average at the end {os.getloadavg()[0]:.2f}"
        )


if __name__ == "__main__":
    main()
