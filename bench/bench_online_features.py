"""Benchmark: features of a ranking request (1 user + N titles) — Feast SDK read vs the fast path.

Builds a synthetic offline store (``--contents`` titles, ``--users`` users), applies the repo,
materializes into SQLite (and Redis when ``--redis`` is given and ``redis-server`` is installed),
then times, in the same run and on the same data:

* ``feast-sdk``: ``FeatureStore.get_online_features`` of the 8 content features for N titles plus
  the user row (two calls, no cross features);
* ``fast-path``: :class:`flywheel.features.online.OnlineFeatureReader.read` (user row from the
  online store, content rows from the in-memory matrix, the 3 cross features included).

Prints p50 / p99 in milliseconds and the ratio of the SDK's figure to the fast path's.

    .venv/bin/python bench/bench_online_features.py --redis
"""

from __future__ import annotations

import argparse
import gc
import random
import shutil
import socket
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from flywheel.config.features import FeaturesConfig
from flywheel.features import formulas as f
from flywheel.features.online import OnlineFeatureReader
from flywheel.features.store import (
    CONTENT_VIEW,
    USER_VIEW,
    apply_repo,
    materialize,
    offline_path,
    open_store,
    write_offline_table,
)

REPO = Path(__file__).resolve().parents[1] / "feature_repo"


def synthetic_tables(
    contents: int, users: int, vocab: f.GenreVocabulary, seed: int = 11
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One feature row per user and per title, stamped an hour ago, with plausible values."""
    rng = random.Random(seed)
    stamp = pd.Timestamp(datetime.now(UTC) - timedelta(hours=1))
    content_rows = []
    for i in range(contents):
        genres = rng.sample(vocab.genres, rng.randint(1, 3))
        content_rows.append(
            {
                "content_id": f"c{i:06d}",
                "event_timestamp": stamp,
                "content_total_plays_7d": rng.randint(0, 5000),
                "content_avg_completion_rate": rng.random(),
                "content_genre_tags": genres,
                "content_genre_vector": f.genre_multi_hot(genres, vocab),
                "content_creator_id": f"k{rng.randint(0, contents // 10):05d}",
                "content_release_recency_days": rng.uniform(0, 3000),
                "content_avg_rating": rng.uniform(1, 5),
                "content_play_to_impression_ratio": rng.random(),
            }
        )
    user_rows = []
    for i in range(users):
        affinity = [rng.random() for _ in range(vocab.size)]
        user_rows.append(
            {
                "user_id": f"u{i:06d}",
                "event_timestamp": stamp,
                "user_total_watch_hours_7d": rng.uniform(0, 40),
                "user_genre_affinity_vector": f.normalized(affinity),
                "user_genre_watch_hours_7d": [rng.choice([0.0, rng.uniform(0, 5)]) for _ in range(vocab.size)],
                "user_avg_session_length_30d": rng.uniform(60, 7200),
                "user_skip_rate_7d": rng.random(),
                "user_search_to_play_ratio_7d": rng.random(),
                "user_time_of_day_distribution": f.normalized([rng.random() for _ in range(4)]),
                "user_device_preference": rng.choice(f.DEVICE_TYPES),
                "user_content_completion_rate_30d": rng.random(),
                "user_creators_watched_30d": sorted({f"k{rng.randint(0, contents // 10):05d}" for _ in range(20)}),
                "user_days_since_signup": rng.uniform(0, 2000),
                "user_subscription_tier": rng.choice(["free", "standard", "premium"]),
            }
        )
    return pd.DataFrame(user_rows), pd.DataFrame(content_rows)


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    arr = np.array(samples) * 1000.0
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def start_redis() -> tuple[subprocess.Popen[bytes], str] | None:
    """A throwaway redis-server on 127.0.0.1 (None when the binary is missing)."""
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    return None


def run_backend(
    name: str, cfg: FeaturesConfig, users: pd.DataFrame, contents: pd.DataFrame, args: argparse.Namespace
) -> list[tuple[str, str, float, float, float, float]]:
    """Load the tables into the backend, time both read paths.

    Returns:
        Rows of (backend, path, wall p50, wall p99, CPU p50, CPU p99), in milliseconds.
    """
    for view, frame in ((USER_VIEW, users), (CONTENT_VIEW, contents)):
        write_offline_table(frame, offline_path(cfg, view))
    store = open_store(cfg)
    apply_repo(store, cfg.repo_path)
    now = datetime.now(UTC)
    materialize(store, now - timedelta(days=2), now)
    vocab = f.GenreVocabulary(tuple(cfg.genres))
    reader = OnlineFeatureReader(store, vocab=vocab)
    loaded = reader.refresh(contents["content_id"])
    rng = random.Random(5)
    ids = list(contents["content_id"])
    user_ids = list(users["user_id"])
    requests = [(rng.choice(user_ids), rng.sample(ids, args.items)) for _ in range(64)]
    content_refs = [f"{CONTENT_VIEW}:{n}" for n, _ in f.CONTENT_FEATURES]
    user_refs = [f"{USER_VIEW}:{n}" for n, _ in f.USER_FEATURES]

    def sdk(user: str, items: list[str]) -> None:
        store.get_online_features(features=content_refs, entity_rows=[{"content_id": c} for c in items]).to_dict()
        store.get_online_features(features=user_refs, entity_rows=[{"user_id": user}]).to_dict()

    def fast(user: str, items: list[str]) -> None:
        reader.read(user, items)

    gc.collect()
    gc.freeze()  # as a server does after loading: the long-lived objects leave the collector's scans
    rows = []
    for label, fn, n in (("feast-sdk", sdk, args.sdk_iterations), ("fast-path", fast, args.iterations)):
        for i in range(min(20, n)):
            fn(*requests[i % len(requests)])
        samples, cpu = [], []
        for i in range(n):
            user, items = requests[i % len(requests)]
            c0, t0 = time.thread_time(), time.perf_counter()
            fn(user, items)
            samples.append(time.perf_counter() - t0)
            cpu.append(time.thread_time() - c0)
        rows.append((name, label, *percentiles(samples), *percentiles(cpu)))
    print(f"[{name}] {loaded} titles in memory, {len(users)} users online; request = 1 user + {args.items} titles")
    return rows


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contents", type=int, default=5000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--iterations", type=int, default=2000, help="fast-path requests timed")
    parser.add_argument("--sdk-iterations", type=int, default=200, help="Feast SDK requests timed")
    parser.add_argument("--redis", action="store_true", help="also run against a local redis-server")
    args = parser.parse_args()

    vocab_cfg = FeaturesConfig()
    vocab = f.GenreVocabulary(tuple(vocab_cfg.genres))
    users, contents = synthetic_tables(args.contents, args.users, vocab)
    results = []
    with tempfile.TemporaryDirectory(prefix="flywheel-bench-") as tmp:
        cfg = FeaturesConfig(repo_path=REPO, data_dir=Path(tmp) / "sqlite")
        results += run_backend("sqlite", cfg, users, contents, args)
        if args.redis:
            server = start_redis()
            if server is None:
                print("[redis] skipped: redis-server is not installed (scripts/install-system-deps.sh)")
            else:
                proc, url = server
                try:
                    cfg = FeaturesConfig(
                        repo_path=REPO, data_dir=Path(tmp) / "redis", online_store="redis", redis_url=url
                    )
                    results += run_backend("redis", cfg, users, contents, args)
                finally:
                    proc.terminate()
                    proc.wait()
    print()
    print("wall = elapsed time per request; cpu = this thread's CPU time (excludes time preempted)")
    print(
        f"{'backend':8} {'path':10} {'p50 ms':>8} {'p99 ms':>8} {'x p50':>7} {'x p99':>7} {'cpu p50':>8} {'cpu p99':>8}"
    )
    by_backend: dict[str, dict[str, tuple[float, ...]]] = {}
    for backend, label, *figures in results:
        by_backend.setdefault(backend, {})[label] = tuple(figures)
    for backend, paths in by_backend.items():
        sdk50, sdk99 = paths["feast-sdk"][:2]
        for label, (p50, p99, c50, c99) in paths.items():
            print(
                f"{backend:8} {label:10} {p50:8.3f} {p99:8.3f} {sdk50 / p50:6.1f}x {sdk99 / p99:6.1f}x"
                f" {c50:8.3f} {c99:8.3f}"
            )
    print("x = the Feast SDK's figure divided by this path's figure (same run, same data)")


if __name__ == "__main__":
    main()
