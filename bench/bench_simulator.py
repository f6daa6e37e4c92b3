"""Benchmark of the platform simulator: events/s generated, and generated + written locally.

Prints the rate of generating the events (JSON bytes ready, nothing written), the rate of
generating and writing them to a local event log in a temporary folder, and the ratio between
the two (the baseline is the generate-only rate measured in the same run). The goal is
>= 100k events/s generated and written. Exit status 0 unless a run fails.

    .venv/bin/python bench/bench_simulator.py [--users N] [--items N] [--days N] [--repeat N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from flywheel.config import FlywheelConfig
from flywheel.config.models import EventLogConfig, LocalLogConfig
from flywheel.config.simulator import SimulatorConfig
from flywheel.simulator.engine import build_world, generate_batches, simulate

GOAL = 100_000


Run = tuple[float, int, float, float]
"""(events per wall second, events, wall seconds, CPU seconds of this process)"""


def _generate_only(cfg: SimulatorConfig) -> Run:
    world = build_world(cfg)
    wall, cpu = time.perf_counter(), time.process_time()
    count = sum(len(batch.messages) for batch in generate_batches(cfg, world))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return count / wall, count, wall, cpu


def _generate_and_write(cfg: SimulatorConfig, folder: Path) -> Run:
    config = FlywheelConfig(
        event_log=EventLogConfig(local=LocalLogConfig(path=folder / "log")),
        simulator=cfg.model_copy(update={"ground_truth_dir": folder / "ground_truth"}),
    )
    wall, cpu = time.perf_counter(), time.process_time()
    count = simulate(config, ground_truth=False).events_written
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return count / wall, count, wall, cpu


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs")
    args = parser.parse_args()
    cfg = SimulatorConfig(users=args.users, items=args.items, days=args.days)

    generated: list[Run] = []
    written: list[Run] = []
    for _ in range(args.repeat):
        generated.append(_generate_only(cfg))
        with tempfile.TemporaryDirectory(prefix="flywheel-bench-") as tmp:
            written.append(_generate_and_write(cfg, Path(tmp)))
    gen_rate, gen_count, gen_wall, gen_cpu = max(generated)
    write_rate, write_count, write_wall, write_cpu = max(written)
    print(f"simulator: {args.users} users, {args.items} items, {args.days} days (best of {args.repeat})")
    print(
        f"generate only          : {gen_rate:10,.0f} events/s  ({gen_count:,} events in {gen_wall:.2f} s; "
        f"{gen_count / gen_cpu:,.0f} events per CPU second)"
    )
    print(
        f"generate + write local : {write_rate:10,.0f} events/s  ({write_count:,} events in {write_wall:.2f} s; "
        f"{write_count / write_cpu:,.0f} events per CPU second)"
    )
    print(f"ratio write/generate   : {write_rate / gen_rate:10.2f}  (baseline: generate only, same run)")
    verdict = "meets" if write_rate >= GOAL else "BELOW"
    print(f"goal >= {GOAL:,} events/s generated and written: {verdict}")
    if write_wall > 1.2 * write_cpu:
        print(f"note: wall time {write_wall:.2f} s > CPU time {write_cpu:.2f} s: the machine is shared, rates are low")


if __name__ == "__main__":
    main()
