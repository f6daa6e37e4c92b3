"""The drift job's statistic on 100k rows x 30 columns against a reference of the same size.

Prints the time per column of Flywheel's drift decision (PSI with Evidently's binning, in numpy:
flywheel.monitoring.drift.feature_drift) and, in the same run, the time of Evidently's
`DataDriftPreset` with its default settings (for more than 1,000 rows: normed Wasserstein distance
for numeric columns, Jensen-Shannon for categorical ones) on the same frames, and the ratio.
Goal: <= 10 s for the whole 100k x 30 decision. Run: `python bench/bench_drift.py [--rows N]`.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from flywheel.monitoring.drift import feature_drift


def frames(rows: int, numeric: int, categorical: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A reference and a current frame; a third of the numeric columns shift in the current one."""
    rng = np.random.default_rng(seed)

    def make(shift: float) -> pd.DataFrame:
        cols: dict[str, np.ndarray] = {}
        for i in range(numeric):
            moved = shift if i % 3 == 0 else 0.0
            cols[f"num_{i:02d}"] = rng.gamma(2.0 + moved, 1.0, rows)
        for i in range(categorical):
            p = np.array([0.4, 0.3, 0.2, 0.1]) if shift == 0 or i else np.array([0.1, 0.2, 0.3, 0.4])
            cols[f"cat_{i}"] = rng.choice(np.array(["tv", "mobile", "web", "console"]), rows, p=p)
        return pd.DataFrame(cols)

    return make(0.0), make(0.5)


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--numeric", type=int, default=25)
    parser.add_argument("--categorical", type=int, default=5)
    args = parser.parse_args()
    reference, current = frames(args.rows, args.numeric, args.categorical)
    columns = list(reference.columns)
    print(f"{args.rows:,} rows x {len(columns)} columns, reference of the same size (machine shared: see the ratio)")

    t0 = time.perf_counter()
    result = feature_drift(reference, current, columns, psi_threshold=0.2, max_drift_share=0.3, min_rows=200)
    ours = time.perf_counter() - t0
    print("\nper column (PSI, Evidently's binning):")
    for col in result.columns:
        print(
            f"  {col.column:8s} psi {col.psi:7.3f} {'DRIFT' if col.drifted else '     '} {col.seconds * 1000:7.1f} ms"
        )
    print(
        f"flywheel drift decision: {ours:.2f} s total, {ours / len(columns) * 1000:.1f} ms per column; {result.detail}"
    )

    from evidently import Report
    from evidently.presets import DataDriftPreset

    t0 = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
    counts = next(m["value"] for m in snapshot.dict()["metrics"] if m["metric_name"].startswith("DriftedColumnsCount"))
    theirs = time.perf_counter() - t0
    print(
        f"Evidently DataDriftPreset (defaults): {theirs:.2f} s, {theirs / len(columns) * 1000:.1f} ms per column; "
        f"{int(counts['count'])} of {len(columns)} drifted"
    )
    print(
        f"ratio Evidently defaults / flywheel: {theirs / ours:.1f}x; goal <= 10 s: {'met' if ours <= 10 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
