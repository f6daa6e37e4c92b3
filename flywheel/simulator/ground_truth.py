"""The simulator's ground truth on disk, and the oracle affinity computed from it.

A ground-truth folder holds::

    manifest.json            seed, time range, drift time, the affinity formula, file list, counts
    catalog.parquet          content_id, title, content_type, genres, primary_genre, creator_id,
                             duration_seconds, release_ts, arrival_ts, synopsis, is_new, bias
    users.parquet            user_id, tier, signup_ts, household_id, device_ids, device_types,
                             home_country, is_bot, drifted
    devices.parquet          device_id, device_type, os, app_version, household_id,
                             clock_skew_ms, introduced_ts
    assignments.parquet      user_id, experiment_id, variant, start_ts
    item_vectors.npy         (items, dims) latent vectors, rows in catalog order
    item_bias.npy            (items,) intrinsic appeal
    user_taste.npy           (users, dims) tastes before the drift, rows in users order
    user_taste_drifted.npy   (users, dims) tastes after the drift (equal when no drift)

The true affinity of user u for title i at time t is::

    affinity = sigmoid(taste_t[u] . item_vectors[i] + item_bias[i])

where ``taste_t`` is ``user_taste`` before the drift time and ``user_taste_drifted`` from it
on. It is the probability scale the simulator's clicks and watch fractions are drawn from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.special import betainc

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
AFFINITY_FORMULA = "sigmoid(taste[u] . item_vectors[i] + item_bias[i]); taste = user_taste_drifted from drift_at_ms on"
WATCH_CONCENTRATION = 4.0
"""Concentration of the Beta distribution the watched fraction is drawn from."""


def watch_mean(affinity: np.ndarray, multiplier: np.ndarray | float = 1.0) -> np.ndarray:
    """Mean watched fraction of a playback, given the true affinity (and an experiment's watch lift)."""
    return np.clip((0.1 + 0.85 * np.asarray(affinity)) * multiplier, 0.02, 0.98)


def watch_past_probability(
    affinity: np.ndarray, *, max_click_probability: float, play_after_click: float, fraction: float = 0.5
) -> np.ndarray:
    """P(a user who looks at a title clicks it, plays it and watches more than ``fraction``).

    The simulator's response model (:mod:`flywheel.simulator.sessions`) at full examination:
    P(click) = max_click_probability x affinity, a click plays with ``play_after_click`` and the
    watched fraction is Beta(c m, c (1 - m)) with m = :func:`watch_mean`. This is the chance that
    a title is relevant (watched past half) to a user wherever it is shown.
    """
    aff = np.asarray(affinity, dtype=float)
    m = watch_mean(aff)
    beyond = 1.0 - betainc(WATCH_CONCENTRATION * m, WATCH_CONCENTRATION * (1.0 - m), fraction)
    return max_click_probability * aff * play_after_click * beyond


@dataclass(frozen=True)
class GroundTruth:
    """The arrays of a ground-truth folder needed by the oracle."""

    user_index: dict[str, int]
    content_index: dict[str, int]
    taste: np.ndarray
    taste_drifted: np.ndarray
    item_vectors: np.ndarray
    item_bias: np.ndarray
    drift_at_ms: int | None
    manifest: dict[str, Any]

    @staticmethod
    def load(folder: str | Path) -> GroundTruth:
        """Read a folder written by :func:`write_ground_truth`."""
        root = Path(folder)
        manifest = json.loads((root / MANIFEST).read_text())
        users = pq.read_table(root / "users.parquet", columns=["user_id"]).column(0).to_pylist()
        items = pq.read_table(root / "catalog.parquet", columns=["content_id"]).column(0).to_pylist()
        return GroundTruth(
            user_index={u: i for i, u in enumerate(users)},
            content_index={c: i for i, c in enumerate(items)},
            taste=np.load(root / "user_taste.npy"),
            taste_drifted=np.load(root / "user_taste_drifted.npy"),
            item_vectors=np.load(root / "item_vectors.npy"),
            item_bias=np.load(root / "item_bias.npy"),
            drift_at_ms=manifest.get("drift_at_ms"),
            manifest=manifest,
        )


def true_affinity(
    user_ids: list[str] | np.ndarray,
    content_ids: list[str] | np.ndarray,
    ground_truth: str | Path | GroundTruth,
    *,
    at_ms: int | None = None,
    outer: bool = False,
) -> np.ndarray:
    """The oracle affinity, recomputed from the exported ground truth.

    Args:
        user_ids: User ids (``u000001``...).
        content_ids: Content ids (``c000001``...).
        ground_truth: A ground-truth folder or a loaded :class:`GroundTruth`.
        at_ms: When: tastes after the drift apply from the drift time on; None means before
            any drift (the tastes the users started with).
        outer: False: one affinity per (user_ids[k], content_ids[k]) pair (same lengths).
            True: the (len(user_ids), len(content_ids)) matrix of every pair.

    Returns:
        Affinities in (0, 1).

    Raises:
        KeyError: An id is not in the ground truth.
    """
    truth = ground_truth if isinstance(ground_truth, GroundTruth) else GroundTruth.load(ground_truth)
    drifted = truth.drift_at_ms is not None and at_ms is not None and at_ms >= truth.drift_at_ms
    taste = truth.taste_drifted if drifted else truth.taste
    users = np.array([truth.user_index[str(u)] for u in user_ids], dtype=np.int64)
    items = np.array([truth.content_index[str(c)] for c in content_ids], dtype=np.int64)
    if outer:
        logits = taste[users] @ truth.item_vectors[items].T + truth.item_bias[items][None, :]
    else:
        if len(users) != len(items):
            raise ValueError(f"{len(users)} user ids but {len(items)} content ids (use outer=True for all pairs)")
        logits = np.einsum("nd,nd->n", taste[users], truth.item_vectors[items]) + truth.item_bias[items]
    return 1.0 / (1.0 + np.exp(-logits))


class SimulatorOracle:
    """The oracle of a ground-truth folder: true affinities and the chance of relevance.

    Calling it gives the (users, titles) affinity matrix; ids the simulation does not know
    score -inf. :meth:`relevance_probability` turns affinities into the probability that the
    user would watch the title past half if shown it (the simulator's own response model, with
    the click and play probabilities of the simulation that wrote the folder).
    """

    def __init__(self, folder: str | Path | GroundTruth):
        self.truth = folder if isinstance(folder, GroundTruth) else GroundTruth.load(folder)
        behaviour = self.truth.manifest.get("config", {})
        self.max_click_probability = float(behaviour.get("max_click_probability", 0.5))
        self.play_after_click = float(behaviour.get("play_after_click", 0.85))

    def __call__(self, user_ids: np.ndarray, content_ids: np.ndarray) -> np.ndarray:
        """True affinity, shape (users, titles); unknown ids score -inf."""
        truth = self.truth
        known_u = np.array([str(u) in truth.user_index for u in user_ids], dtype=bool)
        known_c = np.array([str(c) in truth.content_index for c in content_ids], dtype=bool)
        scores = np.full((len(user_ids), len(content_ids)), -np.inf)
        if known_u.any() and known_c.any():
            inner = true_affinity(np.asarray(user_ids)[known_u], np.asarray(content_ids)[known_c], truth, outer=True)
            scores[np.ix_(known_u, known_c)] = inner
        return scores

    def relevance_probability(self, affinity: np.ndarray) -> np.ndarray:
        """P(watched past half | shown) for affinities from :meth:`__call__` (0 where -inf)."""
        aff = np.where(np.isfinite(affinity), affinity, 0.0)
        return watch_past_probability(
            aff, max_click_probability=self.max_click_probability, play_after_click=self.play_after_click
        )


def _timestamps(ms: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(ms, dtype=np.int64), type=pa.int64()).cast(pa.timestamp("ms", tz="UTC"))


def write_ground_truth(
    folder: str | Path,
    *,
    tables: dict[str, dict[str, Any]],
    arrays: dict[str, np.ndarray],
    manifest: dict[str, Any],
) -> Path:
    """Write tables (parquet), arrays (npy) and the manifest (JSON) into ``folder``.

    Args:
        folder: Destination (created when missing; files are replaced).
        tables: Name -> columns; a column whose name ends in ``_ts`` holds epoch milliseconds
            and is stored as a UTC timestamp.
        arrays: Name -> array, saved as ``<name>.npy``.
        manifest: JSON-serialisable facts; the file list and format version are added.

    Returns:
        The manifest path.
    """
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    files = []
    for name, columns in tables.items():
        data = {col: _timestamps(values) if col.endswith("_ts") else values for col, values in columns.items()}
        pq.write_table(pa.table(data), root / f"{name}.parquet")
        files.append(f"{name}.parquet")
    for name, array in arrays.items():
        np.save(root / f"{name}.npy", array)
        files.append(f"{name}.npy")
    full = {"format_version": FORMAT_VERSION, "affinity": AFFINITY_FORMULA, **manifest, "files": files}
    path = root / MANIFEST
    path.write_text(json.dumps(full, indent=2, sort_keys=True))
    return path
