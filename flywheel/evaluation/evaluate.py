"""Offline evaluation of a model version on a time-based holdout, with baselines and slices.

Heads are scored on every holdout impression (with the logged position, as logged); retrieval
and the two stages on one query per holdout user (the features of the user's first holdout
impression), the relevant items being those the user clicked in the holdout. Baselines on the
same queries: popularity (clicks in the training part), the champion and, on simulated data,
the oracle (the simulator's true affinity).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from flywheel.config.training import HEAD_NAMES, TrainingConfig
from flywheel.evaluation.metrics import head_metrics, ranking_metrics
from flywheel.models.bundle import ModelBundle, recommend, with_retrieval_score
from flywheel.models.dataset import query_rows
from flywheel.models.encoding import encode_catalog, sparse_cardinalities
from flywheel.models.ranker import predict_heads

Oracle = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""true_affinity(user_ids, content_ids) -> [users, items] scores."""


@dataclass
class Evaluation:
    """Flat metrics plus what the plots need."""

    metrics: dict[str, float]
    labels: pd.DataFrame
    probabilities: np.ndarray
    ndcg_by_k: dict[str, dict[int, float]] = field(default_factory=dict)


def _relevant(holdout: pd.DataFrame, users: np.ndarray, label: str = "click") -> list[set[str]]:
    pos = holdout[holdout[label] > 0].groupby("user_id")["content_id"].apply(lambda s: set(s.astype(str)))
    return [pos.get(u, set()) for u in users]


def _prefixed(prefix: str, values: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}.{k}": v for k, v in values.items()}


def ranker_latency_ms(bundle: ModelBundle, candidates: int = 100, repeats: int = 30) -> tuple[float, float]:
    """p50 and p99 latency (ms) of scoring ``candidates`` items for one request (one thread)."""
    cards = sparse_cardinalities(bundle.spec)
    sparse = torch.stack([torch.randint(0, n, (candidates,)) for n in cards], dim=1)
    dense = torch.randn(candidates, bundle.ranker.dense_dim)
    history = torch.randint(0, len(bundle.spec.contents) + 1, (candidates, bundle.spec.history_length))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        times = []
        with torch.no_grad():
            for _ in range(repeats + 3):
                t0 = time.perf_counter()
                bundle.ranker(sparse, dense, history)
                times.append((time.perf_counter() - t0) * 1000)
    finally:
        torch.set_num_threads(threads)
    arr = np.asarray(times[3:])
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def evaluate(
    bundle: ModelBundle,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    catalog: pd.DataFrame,
    config: TrainingConfig,
    *,
    champion: ModelBundle | None = None,
    oracle: Oracle | None = None,
) -> Evaluation:
    """Evaluate ``bundle`` (and the baselines) on ``holdout``.

    Args:
        bundle: The candidate version.
        train: The training part of the window (popularity, content snapshot, new-item test).
        holdout: The holdout part (with ``history``).
        catalog: The catalog.
        config: Cut-offs, bins, head weights.
        champion: The current champion, scored on the same holdout.
        oracle: True affinity (simulated data only).

    Returns:
        Metrics named ``heads.<head>.<metric>``, ``slice.<name>.<head>.<metric>``,
        ``<system>.<metric>@K`` for system in retrieval, two_stage, popularity, oracle,
        champion.two_stage, ``latency.*`` and counts.
    """
    ks = tuple(sorted(set(config.eval_k)))
    kmax = max(ks)
    metrics: dict[str, float] = {"holdout.rows": float(len(holdout)), "train.rows": float(len(train))}
    probs = predict_heads(
        bundle.ranker, with_retrieval_score(bundle, holdout, catalog), catalog, bundle.spec, logged_position=True
    )
    labels = holdout[list(HEAD_NAMES)].astype(float)
    known = set(train["content_id"].astype(str))
    is_new = ~holdout["content_id"].astype(str).isin(known).to_numpy()
    slices = {f"device={d}": (holdout["device_type"] == d).to_numpy() for d in sorted(holdout["device_type"].unique())}
    slices["content=new"], slices["content=existing"] = is_new, ~is_new
    for i, head in enumerate(HEAD_NAMES):
        y = labels[head].to_numpy()
        metrics.update(_prefixed(f"heads.{head}", head_metrics(y, probs[:, i], config.calibration_bins)))
        for name, mask in slices.items():
            if mask.sum() >= 20:
                hm = head_metrics(y[mask], probs[mask, i], config.calibration_bins)
                metrics.update(_prefixed(f"slice.{name}.{head}", {k: hm[k] for k in ("auc", "log_loss", "ece")}))
    metrics["slice.content=new.rows"] = float(is_new.sum())

    queries = query_rows(holdout)
    users = queries["user_id"].astype(str).to_numpy()
    relevant = _relevant(holdout, users)
    new_items = set(holdout["content_id"].astype(str)) - known
    relevant_new = [r & new_items for r in relevant]
    cat = encode_catalog(catalog, bundle.spec)
    rec = recommend(bundle, queries, catalog, train, k=kmax, catalog_tensors=cat)
    ids = rec.content_ids
    systems: dict[str, np.ndarray] = {
        "retrieval": ids[rec.retrieval],
        "two_stage": ids[rec.two_stage],
    }
    pop = train[train["click"] > 0]["content_id"].astype(str).value_counts()
    top_pop = np.asarray(list(pop.index[:kmax]), dtype=object)
    systems["popularity"] = np.tile(top_pop, (len(queries), 1))
    if oracle is not None:
        aff = oracle(users, ids)
        systems["oracle"] = ids[np.argsort(-aff, axis=1, kind="stable")[:, :kmax]]
    if champion is not None:
        crec = recommend(champion, queries, catalog, train, k=kmax)
        systems["champion.two_stage"] = crec.content_ids[crec.two_stage]
        cprobs = predict_heads(
            champion.ranker,
            with_retrieval_score(champion, holdout, catalog),
            catalog,
            champion.spec,
            logged_position=True,
        )
        for i, head in enumerate(HEAD_NAMES):
            hm = head_metrics(labels[head].to_numpy(), cprobs[:, i], config.calibration_bins)
            metrics.update(_prefixed(f"champion.heads.{head}", hm))
    ndcg_by_k: dict[str, dict[int, float]] = {}
    devices = queries["device_type"].astype(str).to_numpy()
    for name, ranked in systems.items():
        rm = ranking_metrics(list(ranked), relevant, ks)
        metrics.update(_prefixed(name, rm))
        ndcg_by_k[name] = {k: rm.get(f"ndcg@{k}", float("nan")) for k in ks}
        if name in ("two_stage", "retrieval"):
            rn = ranking_metrics(list(ranked), relevant_new, ks)
            metrics.update(
                _prefixed(
                    f"slice.content=new.{name}",
                    {k: v for k, v in rn.items() if k.startswith(("recall", "ndcg", "queries"))},
                )
            )
            for d in sorted(set(devices)):
                mask = devices == d
                rd = ranking_metrics(
                    [r for r, m in zip(ranked, mask, strict=True) if m],
                    [r for r, m in zip(relevant, mask, strict=True) if m],
                    ks,
                )
                metrics[f"slice.device={d}.{name}.ndcg@10"] = rd.get("ndcg@10", float("nan"))
    p50, p99 = ranker_latency_ms(bundle)
    metrics["latency.ranker_p50_ms"], metrics["latency.ranker_p99_ms"] = p50, p99
    if "oracle.ndcg@10" in metrics and metrics["oracle.ndcg@10"] > 0:
        metrics["ratio.two_stage_vs_oracle.ndcg@10"] = metrics["two_stage.ndcg@10"] / metrics["oracle.ndcg@10"]
    if metrics.get("popularity.ndcg@10", 0) > 0:
        metrics["ratio.two_stage_vs_popularity.ndcg@10"] = metrics["two_stage.ndcg@10"] / metrics["popularity.ndcg@10"]
    return Evaluation(metrics=metrics, labels=labels, probabilities=probs, ndcg_by_k=ndcg_by_k)
