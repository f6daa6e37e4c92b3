"""How far can a model get on a simulated window? A headroom estimate against the oracle.

Gives a model the simulator's true item vectors and biases, and fits only each user's taste,
by regularised maximum likelihood on the user's logged clicks in the training part of the window
(the position-based click model of the simulator, P(click) = max_click x (1 + position)^-bias x
affinity; the row decay is not in the training set and is left out). Then ranks the titles
released before the holdout as the ``sim.`` evaluation view does, and prints expected NDCG@10
(gains = the simulator's P(watch past half | shown); the oracle is 1 by construction) for
popularity, the fitted tastes and the oracle.

A model that must also learn the items cannot beat this by much: the printed figure is the
headroom that the interactions of the window support.

``--scaling 50,150,500,1500,5000`` then asks how much data per user the headroom needs: for a
sample of users it draws that many impressions each (titles released before the holdout, half
uniform and half by popularity, positions 1-10) with clicks from the simulator's click model,
fits the tastes the same way and prints clicks per user against the headroom.

Usage (after ``flywheel simulate`` and ``flywheel features backfill/materialize/training-set``)::

    FLYWHEEL_HOME=.flywheel/demo .venv/bin/python scripts/ndcg_ceiling.py
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from flywheel.config.loader import load_config
from flywheel.evaluation.metrics import graded_ndcg
from flywheel.models.contract import adapt_feature_platform
from flywheel.models.dataset import time_split
from flywheel.simulator.ground_truth import SimulatorOracle


def expected_ndcg(scores: np.ndarray, gains: np.ndarray, k: int = 10) -> float:
    """NDCG@k of each user's order by ``scores``, with ``gains`` as the graded relevance."""
    return graded_ndcg(np.argsort(-scores, axis=1)[:, :k], gains, (k,))[k]


def fit_tastes(
    train: pd.DataFrame, users: list[str], oracle: SimulatorOracle, *, strength: float, position_bias: float
) -> np.ndarray:
    """Each user's taste fitted to the user's clicks with the true items; L2 towards the mean taste."""
    truth = oracle.truth
    rows = train[train["user_id"].astype(str).isin(users)]
    user = torch.from_numpy(pd.Index(users).get_indexer(rows["user_id"].astype(str)))
    item = torch.tensor([truth.content_index[c] for c in rows["content_id"].astype(str)])
    exam = torch.tensor(rows["position"].to_numpy(dtype=float) ** -position_bias, dtype=torch.float32)
    clicked = torch.tensor(rows["click"].to_numpy(dtype=float), dtype=torch.float32)
    vectors = torch.tensor(truth.item_vectors, dtype=torch.float32)
    bias = torch.tensor(truth.item_bias, dtype=torch.float32)
    mean = torch.tensor(truth.taste.mean(axis=0), dtype=torch.float32)
    taste = torch.nn.Parameter(mean.repeat(len(users), 1).clone())
    opt = torch.optim.Adam([taste], lr=0.05)
    for _ in range(300):
        logit = (taste[user] * vectors[item]).sum(1) + bias[item]
        p = (exam * oracle.max_click_probability * torch.sigmoid(logit)).clamp(1e-6, 1 - 1e-6)
        nll = -(clicked * torch.log(p) + (1 - clicked) * torch.log(1 - p)).sum()
        loss = nll + strength * ((taste - mean) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return taste.detach().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    home = Path(os.environ.get("FLYWHEEL_HOME", ".flywheel"))
    parser.add_argument("--training-set", type=Path, default=home / "features" / "training" / "training_set.parquet")
    parser.add_argument("--ground-truth", type=Path, default=home / "ground_truth")
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--scaling", default="", help="impressions per user to simulate, comma-separated")
    parser.add_argument("--scaling-users", type=int, default=500)
    args = parser.parse_args()
    config = load_config(args.config)
    window, _ = adapt_feature_platform(pd.read_parquet(args.training_set))
    split = time_split(window, config.training.holdout_fraction)
    oracle = SimulatorOracle(args.ground_truth)
    truth = oracle.truth
    catalog = pd.read_parquet(args.ground_truth / "catalog.parquet")
    start = split.holdout["event_timestamp"].min()
    ids = catalog.loc[pd.to_datetime(catalog["release_ts"], utc=True) <= start, "content_id"].astype(str).to_numpy()
    users = sorted(set(split.holdout["user_id"].astype(str)) & set(truth.user_index))
    affinity = oracle(np.asarray(users), ids)
    gains = oracle.relevance_probability(affinity)
    clicks = split.train[split.train["click"] > 0]["content_id"].astype(str).value_counts()
    popularity = np.tile(clicks.reindex(ids).fillna(0.0).to_numpy(), (len(users), 1))
    per_user = split.train.groupby("user_id")["click"].sum()
    print(f"window: {len(split.train):,} training impressions, {len(users):,} holdout users, {len(ids):,} titles")
    print(f"clicks per holdout user in training: {per_user.reindex(users).fillna(0).mean():.2f}")
    print(f"expected NDCG@10  oracle {expected_ndcg(affinity, gains):.4f}")
    print(f"expected NDCG@10  popularity {expected_ndcg(popularity, gains):.4f}")
    columns = [truth.content_index[c] for c in ids]
    position_bias = float(truth.manifest.get("config", {}).get("position_bias", 1.0))
    for strength in (0.3, 1.0, 3.0):
        taste = fit_tastes(split.train, users, oracle, strength=strength, position_bias=position_bias)
        scores = taste @ truth.item_vectors[columns].T + truth.item_bias[columns]
        print(f"expected NDCG@10  true items + fitted tastes (L2 {strength}) {expected_ndcg(scores, gains):.4f}")
    if args.scaling:
        sizes = [int(n) for n in args.scaling.split(",")]
        seed = config.training.seed
        scaling(oracle, users, ids, columns, affinity, gains, sizes, args.scaling_users, position_bias, seed)


def scaling(
    oracle: SimulatorOracle,
    users: list[str],
    ids: np.ndarray,
    columns: list[int],
    affinity: np.ndarray,
    gains: np.ndarray,
    sizes: list[int],
    sample: int,
    position_bias: float,
    seed: int,
) -> None:
    """Headroom against impressions per user, on simulated impressions of a sample of users."""
    truth = oracle.truth
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(users), min(sample, len(users)), replace=False))
    sampled = [users[i] for i in pick]
    popularity = np.exp(truth.item_bias[columns])
    draw = 0.5 * popularity / popularity.sum() + 0.5 / len(ids)
    print(f"scaling on {len(sampled):,} users (headroom: best of L2 0.3 / 1 / 3)")
    for size in sizes:
        shown = np.stack([rng.choice(len(ids), size, p=draw) for _ in sampled])
        position = rng.integers(1, 11, shown.shape)
        p_click = oracle.max_click_probability * position**-position_bias * affinity[pick[:, None], shown]
        clicked = rng.random(shown.shape) < p_click
        train = pd.DataFrame(
            {
                "user_id": np.repeat(sampled, size),
                "content_id": ids[shown].ravel(),
                "position": position.ravel(),
                "click": clicked.ravel().astype(float),
            }
        )
        best = 0.0
        for strength in (0.3, 1.0, 3.0):
            taste = fit_tastes(train, sampled, oracle, strength=strength, position_bias=position_bias)
            scores = taste @ truth.item_vectors[columns].T + truth.item_bias[columns]
            best = max(best, expected_ndcg(scores, gains[pick]))
        print(f"  {size:>6,} impressions per user, {clicked.sum(1).mean():6.1f} clicks per user: headroom {best:.4f}")


if __name__ == "__main__":
    main()
