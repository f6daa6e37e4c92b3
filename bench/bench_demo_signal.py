"""Does a demo-sized simulated window carry enough signal for the two stages to beat popularity?

For each seed: the platform simulator's traffic (``flywheel.simulator.frames.simulate_window``:
the configured behaviour at the given scale, no event log), the training pipeline's split and
models (``train_bundle``) and its evaluation; prints the logged-view NDCG@10 of the two stages,
retrieval, popularity and the oracle, the ratio two stages / popularity (the promotion gate's
``min_ndcg_vs_popularity``; the demo needs >= 1.2 every run), the full-information (``sim.``)
view and the times. Features are those of :mod:`flywheel.simulator.frames` (day granularity),
so the figures approximate the event-log path of ``flywheel monitor loop``, they do not replace it.

    .venv/bin/python bench/bench_demo_signal.py [--users 500] [--days 3] [--sessions 0.8] [--seeds 1,2,3]
"""

from __future__ import annotations

import argparse
import time

GOAL = 1.2


def main() -> None:
    """Print one line per seed and the worst ratio."""
    from flywheel.config.loader import load_config
    from flywheel.evaluation.evaluate import evaluate
    from flywheel.models.bundle import train_bundle
    from flywheel.models.dataset import prepare_window, split_window
    from flywheel.simulator.frames import simulate_window

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--days", type=int, default=3, help="days of the training window (the demo: 3)")
    parser.add_argument("--items", type=int, default=None, help="titles (default: the configured)")
    parser.add_argument("--sessions", type=float, default=None, help="sessions per user and day (default: configured)")
    parser.add_argument("--seeds", default="1,2,3")
    args = parser.parse_args()

    config = load_config(None)
    update: dict[str, float | int] = {"users": args.users, "days": args.days}
    if args.items is not None:
        update["items"] = args.items
    if args.sessions is not None:
        update["sessions_per_user_day"] = args.sessions
    training = config.training
    ratios = []
    for seed in (int(s) for s in args.seeds.split(",")):
        began = time.perf_counter()
        window = simulate_window(config.simulator.model_copy(update={**update, "seed": seed}))
        prepared = prepare_window(window.frame, window.catalog, history_length=training.retrieval.history_length)
        split = split_window(prepared, training.holdout_fraction, training.evaluation)
        simulated = time.perf_counter()
        bundle = train_bundle(split.train, window.catalog, training)
        trained = time.perf_counter()
        m = evaluate(bundle, split.train, split.holdout, window.catalog, training, oracle=window.oracle).metrics
        ratio = m["two_stage.ndcg@10"] / m["popularity.ndcg@10"]
        ratios.append(ratio)
        frame = window.frame
        print(
            f"seed {seed}: {len(frame):,} impressions, {int(frame['click'].sum()):,} clicks, "
            f"{int(frame['watch_50'].sum()):,} watched past half | ndcg@10 two stages "
            f"{m['two_stage.ndcg@10']:.4f} "
            f"retrieval {m['retrieval.ndcg@10']:.4f} popularity {m['popularity.ndcg@10']:.4f} "
            f"oracle {m['oracle.ndcg@10']:.4f} | ratio {ratio:.3f} | sim. two stages "
            f"{m['sim.two_stage.ndcg@10']:.4f} popularity {m['sim.popularity.ndcg@10']:.4f} | ids "
            f"{bundle.spec.id_selection.get('chosen', -1):.0f} | simulate {simulated - began:.1f} s, "
            f"train {trained - simulated:.1f} s",
            flush=True,
        )
    print(f"worst ratio two stages / popularity: {min(ratios):.3f} (goal >= {GOAL})")


if __name__ == "__main__":
    main()
