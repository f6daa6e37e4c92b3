"""Offline evaluation of a model version on a time-based holdout, with baselines and slices.

Heads are scored on every holdout impression (with the logged position, as logged).

Ranking (retrieval, two stages and the baselines) uses one query per holdout user (the features
of the user's first holdout impression). The relevant items are those the user watched past
half in the holdout (:data:`RELEVANCE_LABEL`). Every system ranks the same candidates, the
distinct items the user was shown in the holdout, in content-id order before scoring: retrieval
by its logit, the two stages by the score :func:`~flywheel.models.bundle.recommend` re-ranks by,
popularity by the clicks in the training part, the champion by its two-stage score and, on
simulated data, the oracle by the true affinity. This is the standard re-ranking of logged
impressions (as in MIND): an item can only be engaged with where the logging policy showed it,
and on the platform simulator most rows are drawn from uniform or popularity pools, so over the
whole catalog "relevant" mostly means "happened to be shown" - which no ranker, the oracle
included, can know (there the oracle reaches NDCG@10 ~0.04-0.07 on a simulated week).
Conditioning on exposure leaves the affinity as what mostly separates relevant from
non-relevant items (the rest is where in the page the item was shown, unknown to every
ranker), so the oracle is close to the ceiling. Items a user engaged with in training stay
candidates for every system alike. Where a logging policy already personalises what it shows,
the exposed items are pre-selected and popularity is a strong re-ranker, so the ``catalog.``
view below is the more telling one there.

The same systems ranked over the whole catalog (retrieval's real job) are reported under
``catalog.<system>.*`` with the same relevance.

On simulated data a third view asks the simulator instead of the log (``sim.<system>.*``, the
full-information view; :func:`simulated_response_metrics`): every system recommends its top K
from the titles available when the holdout starts, and relevance is what the simulator's user
model does when a user is shown a title: watch it past half with the probability of
:meth:`~flywheel.simulator.ground_truth.SimulatorOracle.relevance_probability` (drawn for every
(user, title) pair, the same draws for every system, averaged over
``simulated_label_draws`` draws). Nothing there depends on where the logging policy happened to
put a title, so it measures what the models learnt of the users' tastes; on the logged view
above, a ranker that knew only the logged positions would beat popularity (the logging policy
puts popular titles on top of its trending rows), which is why popularity is strong there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd
import torch

from flywheel.config.training import HEAD_NAMES, TrainingConfig
from flywheel.evaluation.metrics import (
    exposed_candidates,
    graded_ndcg,
    head_metrics,
    matrix_ranking_metrics,
    rank_flat,
    ranking_metrics,
)
from flywheel.models.bundle import ModelBundle, recommend, score_candidates, with_retrieval_score
from flywheel.models.dataset import is_relevant, logs_impressions, query_rows, relevance_label
from flywheel.models.encoding import sparse_cardinalities
from flywheel.models.ranker import predict_heads
from flywheel.models.stack import Recommender, first_queries, interest_rows, labelled_candidates


class Oracle(Protocol):
    """The ground truth of simulated data (:class:`~flywheel.simulator.ground_truth.SimulatorOracle`)."""

    def __call__(self, user_ids: np.ndarray, content_ids: np.ndarray) -> np.ndarray:
        """True affinity, [users, items]; -inf for unknown ids."""
        ...

    def relevance_probability(self, affinity: np.ndarray) -> np.ndarray:
        """P(relevant | shown) of each affinity (0 where -inf)."""
        ...


@dataclass
class Evaluation:
    """Flat metrics plus what the plots need."""

    metrics: dict[str, float]
    labels: pd.DataFrame
    probabilities: np.ndarray
    ndcg_by_k: dict[str, dict[int, float]] = field(default_factory=dict)


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


def simulated_response_metrics(
    bundle: ModelBundle,
    queries: pd.DataFrame,
    catalog: pd.DataFrame,
    train: pd.DataFrame,
    oracle: Oracle,
    config: TrainingConfig,
    *,
    champion: ModelBundle | None = None,
) -> dict[str, float]:
    """The full-information view of simulated data (see the module docstring).

    Every system ranks the titles released before the first query; relevance of each (user,
    title) pair is drawn from the oracle's :meth:`Oracle.relevance_probability`, with the same
    draws for every system, ``config.simulated_label_draws`` times.

    Returns:
        ``sim.<system>.ndcg@K`` / ``recall@K`` (mean over draws) for retrieval, two_stage,
        popularity, oracle (and champion.two_stage), ``sim.<system>.expected_ndcg@K`` (gains =
        the relevance probabilities themselves, no draw), ``sim.relevant_per_user`` and ratios
        ``sim.ratio.two_stage_vs_<base>.ndcg@K``.
    """
    ks = tuple(sorted(set(config.eval_k)))
    kmax = max(ks)
    released = pd.to_datetime(catalog["release_ts"], utc=True) <= pd.Timestamp(queries["event_timestamp"].min())
    available = catalog[released.to_numpy()].reset_index(drop=True)
    users = queries["user_id"].astype(str).to_numpy()
    ids = available["content_id"].astype(str).to_numpy()
    affinity = oracle(users, ids)
    known = np.isfinite(affinity).any(axis=1)
    queries, users, affinity = queries[known].reset_index(drop=True), users[known], affinity[known]
    out: dict[str, float] = {"sim.queries": float(len(users)), "sim.titles": float(len(ids))}
    if len(users) == 0 or len(ids) == 0:
        return out
    kmax = min(kmax, len(ids))
    # a last, never-relevant column stands for the empty slots of a short list
    probability = np.hstack([oracle.relevance_probability(affinity), np.zeros((len(users), 1))])
    column = pd.Index(ids)

    def columns_of(content_ids: np.ndarray) -> np.ndarray:
        idx = column.get_indexer(np.asarray([str(c) for c in content_ids.ravel()], dtype=object))
        idx[np.asarray([c is None for c in content_ids.ravel()])] = -1
        return np.where(idx < 0, len(ids), idx).reshape(content_ids.shape)

    tops: dict[str, np.ndarray] = {}
    times = (
        (pd.to_datetime(queries["event_timestamp"], utc=True) - pd.Timestamp(0, tz="UTC"))
        // pd.Timedelta(milliseconds=1)
    ).to_numpy(dtype=np.int64)
    for name, version in (("", bundle), ("champion.", champion)):
        if version is None:
            continue
        if version.state is not None:
            top_ids, _, source_tops = Recommender(version, catalog=available, train=train).recommend_many(
                users, kmax, as_of_ms=times
            )
            tops[f"{name}two_stage"] = columns_of(top_ids)
            if not name:
                tops["retrieval"] = columns_of(source_tops["two_tower"])
        else:
            rec = recommend(version, queries, available, train, k=kmax)
            tops[f"{name}two_stage"] = columns_of(rec.content_ids[rec.two_stage])
            if not name:
                tops["retrieval"] = columns_of(rec.content_ids[rec.retrieval])
    clicks = train[train["click"] > 0]["content_id"].astype(str).value_counts().reindex(ids).fillna(0.0)
    tops["popularity"] = np.tile(np.argsort(-clicks.to_numpy(), kind="stable")[:kmax], (len(users), 1))
    tops["oracle"] = np.argsort(-affinity, axis=1, kind="stable")[:, :kmax]
    ks = tuple(k for k in ks if k <= kmax)
    for name, top in tops.items():
        for k, value in graded_ndcg(top, probability, ks).items():
            out[f"sim.{name}.expected_ndcg@{k}"] = value
    rng = np.random.default_rng(config.seed)
    sums: dict[str, float] = {}
    relevant_per_user = 0.0
    for _ in range(config.simulated_label_draws):
        relevant = rng.random(probability.shape) < probability  # the padding column: p = 0, never
        relevant_per_user += float(relevant.sum(axis=1).mean()) / config.simulated_label_draws
        for name, top in tops.items():
            for key, value in matrix_ranking_metrics(top, relevant, ks).items():
                sums[f"sim.{name}.{key}"] = sums.get(f"sim.{name}.{key}", 0.0) + value / config.simulated_label_draws
    out.update(sums)
    out["sim.relevant_per_user"] = relevant_per_user
    for base in ("oracle", "popularity"):
        for k in ks:
            base_ndcg = out.get(f"sim.{base}.ndcg@{k}", 0.0)
            if base_ndcg > 0:
                out[f"sim.ratio.two_stage_vs_{base}.ndcg@{k}"] = out[f"sim.two_stage.ndcg@{k}"] / base_ndcg
    return out


SLICED_SYSTEMS = (
    "two_stage",
    "retrieval",
    "popularity",
    "catalog.two_stage",
    "catalog.retrieval",
    "catalog.popularity",
)
"""Systems whose ranking metrics are also reported by device and by new / existing content."""


def _logged_scores(
    bundle: ModelBundle,
    recommender: Recommender,
    queries: pd.DataFrame,
    users: np.ndarray,
    times: np.ndarray,
    qidx: np.ndarray,
    cids: np.ndarray,
    catalog: pd.DataFrame,
    train: pd.DataFrame,
) -> np.ndarray:
    """The two-stage score of the titles each user was shown: the ranker over the sources' features
    where it reads them, else the two-stage score the serving path orders by (ranker + retrieval)."""
    if recommender.reads_sources:
        return recommender.score_pairs(users, times, qidx, cids)
    return score_candidates(bundle, queries, qidx, cids, catalog, train)[1]


def _popularity_tops(train: pd.DataFrame, users: np.ndarray, k: int, exclude_seen: bool) -> np.ndarray:
    """The most engaged titles of the training part for every user, less the user's own (when
    ``exclude_seen``), as the top-K function leaves them out: [U, k] content ids."""
    interest = interest_rows(train)
    order = interest["content_id"].value_counts().index.to_numpy(dtype=object)
    seen = interest.groupby("user_id")["content_id"].apply(set) if exclude_seen else pd.Series(dtype=object)
    out = np.full((len(users), k), None, dtype=object)
    head = order[: k + 1000]
    for q, user in enumerate(users):
        mine = seen.get(user, set())
        picked = [c for c in head if c not in mine][:k]
        out[q, : len(picked)] = picked
    return out


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

    Every system is asked through the top-K function of its version
    (:meth:`~flywheel.models.stack.Recommender.recommend_many`), once per holdout user as of the
    user's first held-out row. Relevance follows ``config.evaluation`` (:func:`relevance_label`).

    Args:
        bundle: The candidate version (with its item-to-item weights and training state).
        train: The training part of the window (popularity, histories, the content snapshot).
        holdout: The holdout part (with ``history``).
        catalog: The catalog.
        config: Cut-offs, bins, head weights, relevance.
        champion: The current champion, scored on the same holdout.
        oracle: True affinity (simulated data only).

    Returns:
        Metrics named ``heads.<head>.<metric>`` (on the holdout's labelled candidates: the sources'
        candidates and the titles the holdout logs), ``catalog.<system>.<metric>@K`` for system
        in two_stage, retrieval, source.<name>, popularity (and oracle, champion.two_stage) over
        the whole catalog, the same without prefix over the titles each user was shown when the
        window logs impressions (``view.logged`` = 1; 0 for imported interactions, where the gate
        then reads the catalog view), ``sim.*`` with an oracle, ``ratio.*``, ``latency.*``, counts.
    """
    ks = tuple(sorted(set(config.eval_k)))
    kmax = max(ks)
    relevance = relevance_label(pd.concat([train.head(0), holdout]), config.evaluation)
    logged = logs_impressions(holdout)
    metrics: dict[str, float] = {
        "holdout.rows": float(len(holdout)),
        "train.rows": float(len(train)),
        "view.logged": float(logged),
    }
    recommender = Recommender(bundle, catalog=catalog, train=train)
    if recommender.reads_sources:  # the rows it learnt from: the sources' candidates, labelled by the holdout
        labelled, _ = labelled_candidates(recommender, holdout, negatives_per_user=None, seed=config.seed)
        probs = predict_heads(bundle.ranker, labelled, catalog, bundle.spec)
    else:  # every logged impression of the holdout, at its logged position
        labelled = holdout
        probs = predict_heads(
            bundle.ranker, with_retrieval_score(bundle, holdout, catalog), catalog, bundle.spec, logged_position=True
        )
    labels = labelled[list(HEAD_NAMES)].astype(float)
    known = set(train["content_id"].astype(str))
    is_new = ~labelled["content_id"].astype(str).isin(known).to_numpy()
    slices = {
        f"device={d}": (labelled["device_type"] == d).to_numpy() for d in sorted(labelled["device_type"].unique())
    }
    slices["content=new"], slices["content=existing"] = is_new, ~is_new
    for i, head in enumerate(HEAD_NAMES):
        y = labels[head].to_numpy()
        metrics.update(_prefixed(f"heads.{head}", head_metrics(y, probs[:, i], config.calibration_bins)))
        for name, mask in slices.items():
            if mask.sum() >= 20:
                hm = head_metrics(y[mask], probs[mask, i], config.calibration_bins)
                metrics.update(
                    _prefixed(f"slice.{name}.{head}", {k: hm[k] for k in ("auc", "pr_auc", "log_loss", "ece")})
                )
    metrics["slice.content=new.rows"] = float(is_new.sum())
    metrics["heads.rows"] = float(len(labelled))

    users, times = first_queries(holdout)
    relevant_rows = holdout[is_relevant(holdout, relevance)]
    by_user = relevant_rows.groupby(relevant_rows["user_id"].astype(str))["content_id"].apply(
        lambda s: set(s.astype(str))
    )
    relevant = [by_user.get(u, set()) for u in users]
    new_items = set(holdout["content_id"].astype(str)) - known
    relevant_by_content = {"new": [r & new_items for r in relevant], "existing": [r - new_items for r in relevant]}
    ids, _, tops = recommender.recommend_many(users, kmax, as_of_ms=times)
    systems: dict[str, np.ndarray] = {
        "catalog.two_stage": ids,
        "catalog.retrieval": tops["two_tower"],
        "catalog.popularity": _popularity_tops(train, users, kmax, config.evaluation.exclude_seen),
    }
    for name, top in tops.items():
        systems[f"catalog.source.{name}"] = top
    champion_rec = None
    if champion is not None and champion.state is not None:
        champion_rec = Recommender(champion, catalog=catalog, train=train)
        systems["catalog.champion.two_stage"] = champion_rec.recommend_many(users, kmax, as_of_ms=times)[0]
    queries = recommender.queries(list(users), times)
    if oracle is not None:
        aff = oracle(users, recommender.content_ids)
        systems["catalog.oracle"] = recommender.content_ids[np.argsort(-aff, axis=1, kind="stable")[:, :kmax]]
    if logged:
        # the titles each user was shown in the holdout, re-ranked by every system (see the module docstring)
        qidx, cids = exposed_candidates(holdout, users)
        pop = train[train["click"] > 0]["content_id"].astype(str).value_counts()
        queries = query_rows(holdout)  # each user's first holdout impression, as logged (same user order)
        flat: dict[str, np.ndarray] = {
            "retrieval": score_candidates(bundle, queries, qidx, cids, catalog, train)[0],
            "two_stage": _logged_scores(bundle, recommender, queries, users, times, qidx, cids, catalog, train),
            "popularity": pop.reindex(cids).fillna(0.0).to_numpy(dtype=float),
        }
        if champion_rec is not None:
            assert champion is not None
            flat["champion.two_stage"] = _logged_scores(
                champion, champion_rec, queries, users, times, qidx, cids, catalog, train
            )
        if oracle is not None:
            col = pd.Index(recommender.content_ids.astype(str)).get_indexer(cids)
            flat["oracle"] = np.where(col >= 0, aff[qidx, np.clip(col, 0, None)], -np.inf)
        for name, score in flat.items():
            systems[name] = rank_flat(qidx, cids, score, len(users), kmax)
    ndcg_by_k: dict[str, dict[int, float]] = {}
    devices = queries["device_type"].astype(str).to_numpy()
    for name, ranked in systems.items():
        rm = ranking_metrics(list(ranked), relevant, ks)
        metrics.update(_prefixed(name, rm))
        if name.startswith("catalog.") != logged:
            ndcg_by_k[name.removeprefix("catalog.")] = {k: rm.get(f"ndcg@{k}", float("nan")) for k in ks}
        if name in SLICED_SYSTEMS:
            for content, rel in relevant_by_content.items():
                metrics.update(_prefixed(f"slice.content={content}.{name}", ranking_metrics(list(ranked), rel, ks)))
            for d in sorted(set(devices)):
                mask = devices == d
                rd = ranking_metrics(
                    [r for r, m in zip(ranked, mask, strict=True) if m],
                    [r for r, m in zip(relevant, mask, strict=True) if m],
                    ks,
                )
                metrics.update(_prefixed(f"slice.device={d}.{name}", rd))
    if oracle is not None:
        metrics.update(simulated_response_metrics(bundle, queries, catalog, train, oracle, config, champion=champion))
    p50, p99 = ranker_latency_ms(bundle)
    metrics["latency.ranker_p50_ms"], metrics["latency.ranker_p99_ms"] = p50, p99
    for prefix in ("", "catalog."):
        system = metrics.get(f"{prefix}two_stage.ndcg@10", float("nan"))
        for base in ("oracle", "popularity", "source.item_to_item"):
            if metrics.get(f"{prefix}{base}.ndcg@10", 0) > 0:
                metrics[f"{prefix}ratio.two_stage_vs_{base}.ndcg@10"] = system / metrics[f"{prefix}{base}.ndcg@10"]
    return Evaluation(metrics=metrics, labels=labels, probabilities=probs, ndcg_by_k=ndcg_by_k)
