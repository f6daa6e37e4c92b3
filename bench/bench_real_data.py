"""Real data through the user's path, scored against strong same-run baselines.

Data: MovieLens ml-latest-small (GroupLens; research use only, so it is a fixture outside the
repository: ``$FLYWHEEL_REAL_DATA``, else ``../shared/data/ml-latest-small`` next to the repo
root). Its files are checked against the fixture's ``SHA256SUMS`` when present.

Protocol (fixed):

1. The user's path, with the ``flywheel`` command and a config file holding only the settings
   below: ``import-catalog movies.csv`` (genres split on ``|``, the year from the title),
   ``import-interactions ratings.csv`` (epoch seconds; a rating >= 4 also writes a like),
   ``features backfill`` (PySpark), ``pipeline run training`` (kfp.local: window from Feast,
   data-quality gate, split, two-tower, item-to-item, ranker, evaluation, promotion gate, MLflow
   registry, export).
2. Split ``per_user``: each user's last 10 interactions are held out (all 610 users have 20 or
   more); one query per user, as of the user's first held-out interaction.
3. Relevant: ``any`` held-out interaction. Candidates: the whole catalog less the user's
   training titles. Metrics: precision, recall, NDCG and MAP at 10.
4. Systems: the pipeline's evaluation of the registered version (retrieval = the two-tower
   alone, each candidate source alone, the two stages) and, on the very split the pipeline
   evaluated (its ``build-training-set`` outputs), the baselines popularity, EASE (the
   item-to-item source alone: closed form, lambda 200) and ALS and BPR from ``implicit``.
5. Goal: the two stages' NDCG@10 >= 1.05 x the best baseline's; printed as a ratio.

``--users N`` keeps the first N users (by id) for a quick run (the integration test's size).
The machine may be shared: times are indicative; the metrics are deterministic up to torch's
CPU nondeterminism.

Usage:
    python bench/bench_real_data.py [--users 610] [--home /tmp/fw-bench] [--candidates "index: ivf, ivf_probe: 5"]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MOVIELENS_GENRES = (
    "action adventure animation children comedy crime documentary drama fantasy film_noir horror imax musical "
    "mystery romance sci_fi thriller war western"
).split()
K = 10
HOLDOUT = 10


def data_dir() -> Path:
    """The fixture: ``$FLYWHEEL_REAL_DATA`` or ``<repo>/../shared/data/ml-latest-small``."""
    return Path(os.environ.get("FLYWHEEL_REAL_DATA") or REPO.parent / "shared" / "data" / "ml-latest-small")


def check_fixture(folder: Path) -> None:
    """Fail unless the fixture's ratings and movies are there (and match SHA256SUMS when given)."""
    for name in ("ratings.csv", "movies.csv"):
        if not (folder / name).exists():
            raise SystemExit(f"{folder / name} not found: set FLYWHEEL_REAL_DATA to the ml-latest-small folder")
    sums = folder.parent / "SHA256SUMS"
    if sums.exists():
        for line in sums.read_text().splitlines():
            digest, _, name = line.partition("  ")
            path = folder.parent / name.strip()
            if path.name in ("ratings.csv", "movies.csv") and path.exists():
                if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
                    raise SystemExit(f"{path}: checksum differs from SHA256SUMS")


def config_text(users: int | None, candidates: str = "") -> str:
    """The bench's config file: only what differs from the defaults (``candidates``: settings of
    ``training.candidates``, e.g. ``index: ivf, ivf_probe: 5``)."""
    lines = [
        "features:",
        f"  genres: [{', '.join(MOVIELENS_GENRES)}]",
        "training:",
        f"  evaluation: {{split: per_user, per_user_holdout: {HOLDOUT}, relevance: any}}",
    ]
    if candidates:
        lines.append(f"  candidates: {{{candidates}}}")
    if users is not None and users < 200:
        # a small run checks the path, not the quality: a small window passes the volume check, and
        # the gate's NDCG floor against popularity (the full run's goal, measured above) is lifted
        lines.append("  quality: {min_rows: 100}")
        lines.append("  promotion: {min_ndcg_vs_popularity: 0.0}")
    return "\n".join(lines) + "\n"


def run(args: list[str], env: dict[str, str], cwd: Path) -> float:
    """Run one ``flywheel`` command (niced), echo its last lines, return its wall time."""
    t0 = time.perf_counter()
    cmd = ["nice", "-n", "3", str(Path(sys.executable).parent / "flywheel"), *args]
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    took = time.perf_counter() - t0
    tail = (done.stdout + done.stderr).strip().splitlines()[-6:]
    print(f"$ flywheel {' '.join(args[:2])} ... ({took:.0f} s)")
    for line in tail:
        print(f"    {line}")
    if done.returncode != 0:
        raise SystemExit(f"`flywheel {' '.join(args)}` failed with exit code {done.returncode}")
    return took


def subset(folder: Path, users: int | None, out: Path) -> tuple[Path, Path]:
    """The fixture's files, or their first ``users`` users' ratings (and every movie)."""
    if users is None:
        return folder / "ratings.csv", folder / "movies.csv"
    ratings = pd.read_csv(folder / "ratings.csv")
    keep = sorted(ratings["userId"].unique())[:users]
    ratings[ratings["userId"].isin(keep)].to_csv(out / "ratings.csv", index=False)
    return out / "ratings.csv", folder / "movies.csv"


def pipeline_metrics(home: Path) -> dict[str, float]:
    """Metrics of the newest training run in the local MLflow."""
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["flywheel-recommender"], order_by=["start_time DESC"], max_results=1)
    if runs.empty:
        raise SystemExit("no MLflow run found: the pipeline did not log an evaluation")
    row = runs.iloc[0]
    # MLflow metric names spell "@" as "_at_" (see flywheel.registry.mlflow_registry)
    return {
        c.removeprefix("metrics.").replace("_at_", "@"): float(row[c]) for c in runs.columns if c.startswith("metrics.")
    }


def evaluated_split(home: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The train and holdout parts the pipeline evaluated (its build-training-set outputs)."""
    found = sorted((home / "pipelines").glob("training-*/root/**/build-training-set/train"))
    if not found:
        raise SystemExit("the pipeline's build-training-set outputs were not found")
    folder = found[-1].parent
    return pd.read_parquet(folder / "train"), pd.read_parquet(folder / "holdout")


def baselines(train: pd.DataFrame, holdout: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Popularity, ALS and BPR (implicit) on the evaluated split, asked as the pipeline asks the
    models: one query per held-out user, the user's training titles left out, relevant = any
    held-out interaction."""
    from scipy import sparse

    from flywheel.evaluation.metrics import ranking_metrics
    from flywheel.models.stack import first_queries, interest_rows

    interest = interest_rows(train)
    users, _ = first_queries(holdout)
    held = interest_rows(holdout).groupby("user_id")["content_id"].apply(set)
    relevant = [held.get(u, set()) for u in users]
    items = pd.Index(sorted(interest["content_id"].unique()))
    everyone = pd.Index(sorted(set(interest["user_id"]) | set(users)))
    matrix = sparse.csr_matrix(
        (
            np.ones(len(interest), dtype=np.float32),
            (everyone.get_indexer(interest["user_id"]), items.get_indexer(interest["content_id"])),
        ),
        shape=(len(everyone), len(items)),
    )
    matrix.data[:] = 1.0
    out: dict[str, dict[str, float]] = {}
    counts = np.asarray(matrix.sum(axis=0)).ravel()
    rows = everyone.get_indexer(users)
    popular = np.tile(counts, (len(users), 1))
    out["popularity"] = ranking_metrics(_top(popular, matrix[rows], items), relevant, (K,))
    try:
        from implicit.als import AlternatingLeastSquares
        from implicit.bpr import BayesianPersonalizedRanking
    except ImportError:
        print("implicit is not installed: no ALS/BPR baselines (pip install 'implicit==0.7.2')")
        return out
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):
        for name, model in (
            ("ALS (implicit)", AlternatingLeastSquares(factors=64, regularization=0.05, iterations=20, random_state=7)),
            ("BPR (implicit)", BayesianPersonalizedRanking(factors=64, iterations=100, random_state=7)),
        ):
            model.fit(matrix, show_progress=False)
            scores = np.asarray(model.user_factors[rows] @ model.item_factors.T)
            out[name] = ranking_metrics(_top(scores, matrix[rows], items), relevant, (K,))
    return out


def _top(scores: np.ndarray, seen: Any, items: pd.Index) -> list[list[str]]:
    scores = np.where(seen.toarray() > 0, -np.inf, scores)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :K]
    return [list(items[row]) for row in order]


def run_protocol(users: int | None, home: Path, *, reuse: bool = False, candidates: str = "") -> dict[str, Any]:
    """Steps 1-4 of the protocol into ``home``; returns the systems' and baselines' metrics,
    the pipeline's metrics and the times. With ``reuse``, a home that already holds the imported
    catalog and the backfilled events (the same deterministic steps) skips them; its registry is
    started afresh, as in a full run (the promotion gate would compare with an earlier champion)."""
    folder = data_dir()
    check_fixture(folder)
    home.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="flywheel-real-cwd-"))  # outside the checkout, as a user would be
    try:
        (work / "flywheel.yaml").write_text(config_text(users, candidates))
        env = {**os.environ, "FLYWHEEL_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true"}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        ratings, movies = subset(folder, users, work)
        config = ["--config", str(work / "flywheel.yaml")]
        times: dict[str, float] = {}
        done = (home / "catalog" / "catalog.parquet").exists() and any(home.glob("features/**/events.parquet"))
        if reuse and done:
            print(f"reusing the imported catalog and the backfilled events of {home} (a new registry)")
            (home / "mlflow.db").unlink(missing_ok=True)  # an earlier champion would gate this run's model
            shutil.rmtree(home / "mlartifacts", ignore_errors=True)
        else:
            times |= prepare(movies, ratings, config, env, work)
        times["pipeline run training"] = run(["pipeline", "run", "training", *config], env, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return summarize(home, times)


def prepare(movies: Path, ratings: Path, config: list[str], env: dict[str, str], work: Path) -> dict[str, float]:
    """Step 1 before the pipeline: import the catalog and the interactions, backfill the features."""
    times: dict[str, float] = {}
    times["import-catalog"] = run(
        ["import-catalog", str(movies), *config, "--id-col", "movieId", "--no-genres-value", "(no genres listed)"],
        env,
        work,
    )
    columns = ["--user-col", "userId", "--item-col", "movieId", "--time-format", "s", "--rating-col", "rating"]
    times["import-interactions"] = run(["import-interactions", str(ratings), *config, *columns], env, work)
    times["features backfill"] = run(["features", "backfill", *config], env, work)
    return times


def summarize(home: Path, times: dict[str, float]) -> dict[str, Any]:
    """Step 4: the pipeline's metrics and the same-run baselines on the split it evaluated."""
    metrics = pipeline_metrics(home)
    train, holdout = evaluated_split(home)
    t0 = time.perf_counter()
    base = baselines(train, holdout)
    times["baselines"] = time.perf_counter() - t0
    measures = ("precision", "recall", "ndcg", "map")
    names = {
        "retrieval (two-tower)": "catalog.retrieval",
        "source: item-to-item": "catalog.source.item_to_item",
        "source: popular now": "catalog.source.popular_now",
        "source: new releases": "catalog.source.new_releases",
        "two stages (sources + ranker)": "catalog.two_stage",
    }
    systems = {label: {m: metrics.get(f"{p}.{m}@{K}", float("nan")) for m in measures} for label, p in names.items()}
    baseline_rows = {"popularity": {m: base["popularity"][f"{m}@{K}"] for m in measures}}
    baseline_rows["EASE (lambda 200)"] = dict(systems["source: item-to-item"])
    for name in ("ALS (implicit)", "BPR (implicit)"):
        if name in base:
            baseline_rows[name] = {m: base[name][f"{m}@{K}"] for m in measures}
    best_name, best = max(((n, r["ndcg"]) for n, r in baseline_rows.items()), key=lambda x: x[1])
    ours = systems["two stages (sources + ranker)"]["ndcg"]
    return {
        "systems": systems,
        "baselines": baseline_rows,
        "best_baseline": best_name,
        "ratio": ours / best if best > 0 else float("nan"),
        "users": int(metrics.get("catalog.two_stage.queries", 0)),
        "metrics": metrics,
        "times": times,
    }


def print_table(result: dict[str, Any]) -> None:
    """The table, the ratio and the times."""
    print(
        f"\nml-latest-small, {result['users']} users, per-user holdout of the last {HOLDOUT}, "
        f"relevant = any interaction, @{K}"
    )
    print(f"{'system':34s} {'P@10':>7s} {'R@10':>7s} {'NDCG@10':>8s} {'MAP@10':>7s}")
    for label, row in result["systems"].items():
        print(f"{label:34s} {row['precision']:7.4f} {row['recall']:7.4f} {row['ndcg']:8.4f} {row['map']:7.4f}")
    print("baselines (same run, same split)")
    for label, row in result["baselines"].items():
        print(f"  {label:32s} {row['precision']:7.4f} {row['recall']:7.4f} {row['ndcg']:8.4f} {row['map']:7.4f}")
    best = result["baselines"][result["best_baseline"]]["ndcg"]
    ours = result["systems"]["two stages (sources + ranker)"]["ndcg"]
    print(
        f"\ntwo stages NDCG@10 {ours:.4f} / best baseline ({result['best_baseline']}) {best:.4f} "
        f"= {result['ratio']:.3f}x (goal >= 1.05x)"
    )
    blend = result["metrics"].get("ranker.source_blend")
    if blend is not None:
        print(f"item-to-item blend of the two-stage score (chosen on the ranker's validation users): {blend:g}")
    print("times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in result["times"].items()) + " (shared machine)")


def main() -> None:
    """Run the protocol and print the table and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=None, help="keep the first N users (default: all)")
    parser.add_argument("--home", type=Path, default=None, help="FLYWHEEL_HOME to use (default: a temp folder)")
    parser.add_argument("--reuse", action="store_true", help="skip the imports and the backfill if --home has them")
    parser.add_argument(
        "--candidates",
        default="",
        help="training.candidates settings for the config file, e.g. 'index: ivf, ivf_probe: 5'",
    )
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="flywheel-real-"))
    try:
        result = run_protocol(args.users, home, reuse=args.reuse, candidates=args.candidates)
    finally:
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)
    print_table(result)
    print(json.dumps({k: result[k] for k in ("ratio", "best_baseline", "users")}))


if __name__ == "__main__":
    main()
