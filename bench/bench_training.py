"""Training throughput (samples/s) of each model on this machine, against a baseline in the same run.

Baseline: a logistic regression over the ranker's dense inputs, trained with the same batch
size (the floor any model pays for data movement and the optimizer step). Early stopping is off
so that every model runs the same number of epochs; every figure includes encoding the frame.

    .venv/bin/python bench/bench_training.py [--requests 3000]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from torch.nn import functional as F


def _time(fn, samples: int) -> float:
    start = time.perf_counter()
    fn()
    return samples / (time.perf_counter() - start)


def main() -> None:
    """Print samples/s per model and the ratio to the baseline."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from flywheel.config.simulator import SimulatorConfig
    from flywheel.config.training import RankerConfig, RetrievalConfig, TrainingConfig
    from flywheel.models.bundle import fit_feature_spec
    from flywheel.models.dataset import prepare_window
    from flywheel.models.encoding import encode_catalog, encode_ranker
    from flywheel.models.ranker import train_ranker
    from flywheel.models.two_tower import train_two_tower
    from flywheel.simulator.frames import simulate_window

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=2, help="simulated days (1000 users, 800 titles)")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    world = simulate_window(SimulatorConfig(users=1000, items=800, days=args.days, seed=0))
    frame = prepare_window(world.frame, world.catalog, history_length=20)
    config = TrainingConfig()
    spec = fit_feature_spec(frame, world.catalog, config)
    catalog = encode_catalog(world.catalog, spec)
    positives = int((frame["click"] > 0).sum())
    n = len(frame)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {n:,} impressions, {positives:,} positives")

    y = torch.from_numpy(frame["click"].to_numpy(dtype=np.float32))

    def logistic() -> None:
        x = encode_ranker(frame, world.catalog, spec)  # the same input encoding as the ranker
        model = torch.nn.Linear(x["dense"].shape[1], 1)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        for _ in range(args.epochs):
            for s in range(0, n, 512):
                loss = F.binary_cross_entropy_with_logits(model(x["dense"][s : s + 512]).squeeze(1), y[s : s + 512])
                opt.zero_grad()
                loss.backward()
                opt.step()

    logistic()  # warm-up (first-call allocations)
    rows = {
        "baseline: logistic regression": _time(logistic, n * args.epochs),
        "ranker: MLP (cross_layers=0)": _time(
            lambda: train_ranker(
                frame, world.catalog, spec, RankerConfig(epochs=args.epochs, cross_layers=0, validation_fraction=0.0)
            ),
            n * args.epochs,
        ),
        "ranker: DCN-v2 (default)": _time(
            lambda: train_ranker(frame, world.catalog, spec, RankerConfig(epochs=args.epochs, validation_fraction=0.0)),
            n * args.epochs,
        ),
        "two-tower retrieval (positives)": _time(
            lambda: train_two_tower(frame, catalog, spec, RetrievalConfig(epochs=args.epochs, validation_fraction=0.0)),
            positives * args.epochs,
        ),
    }
    base = rows["baseline: logistic regression"]
    print(f"{'model':36s} {'samples/s':>12s} {'vs baseline':>12s}")
    for name, rate in rows.items():
        print(f"{name:36s} {rate:12,.0f} {rate / base:12.3f}")


if __name__ == "__main__":
    main()
