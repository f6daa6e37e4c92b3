"""Assignment is deterministic, uniform, sticky under ramp-ups and orthogonal across layers."""

from __future__ import annotations

import hashlib

import numpy as np
from scipy import stats

from flywheel.experiments.assignment import assign, assign_all, bucket_of, variant_of
from flywheel.experiments.config import BUCKETS, ExperimentRegistry, ExperimentSpec

UNITS = [f"user-{i}" for i in range(20_000)]


def _registry(home_alloc: float = 100.0, holdout: float = 0.0) -> ExperimentRegistry:
    return ExperimentRegistry.model_validate(
        {
            "holdout": {"percent": holdout},
            "layers": [{"name": "home"}, {"name": "search"}],
            "experiments": [
                {"id": "ranker", "layer": "home", "allocation_percent": home_alloc,
                 "variants": [{"name": "control", "weight": 1}, {"name": "a", "weight": 1},
                              {"name": "b", "weight": 2}]},
                {"id": "query", "layer": "search", "allocation_percent": 50},
                {"id": "spell", "layer": "search", "offset_percent": 50, "allocation_percent": 50},
            ],
        }
    )  # fmt: skip


def test_the_variant_follows_the_shared_sha256_contract() -> None:
    spec = ExperimentSpec(id="home_row_ranker_v2")
    for unit in UNITS[:200]:
        digest = hashlib.sha256(f"home_row_ranker_v2:{unit}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64
        assert variant_of(unit, spec) == ("control" if u < 0.5 else "treatment")


def test_assignment_is_deterministic() -> None:
    reg = _registry()
    assert [assign(u, reg, "home") for u in UNITS[:500]] == [assign(u, reg, "home") for u in UNITS[:500]]


def test_variants_follow_their_weights_by_chi_square() -> None:
    reg = _registry()
    counts = {"control": 0, "a": 0, "b": 0}
    for u in UNITS:
        counts[assign(u, reg, "home").variant] += 1  # type: ignore[index]
    observed = np.array(list(counts.values()))
    p = stats.chisquare(observed, np.array([0.25, 0.25, 0.5]) * len(UNITS)).pvalue
    assert p > 0.001, counts


def test_buckets_are_uniform_by_chi_square() -> None:
    buckets = np.array([bucket_of(u, "home") for u in UNITS])
    assert buckets.min() >= 0 and buckets.max() < BUCKETS
    observed = np.bincount(buckets * 100 // BUCKETS, minlength=100)
    assert stats.chisquare(observed).pvalue > 0.001


def test_layers_are_independent_by_chi_square_contingency() -> None:
    reg = _registry()
    table = np.zeros((3, 4), dtype=int)
    rows, cols = {"control": 0, "a": 1, "b": 2}, {}
    for u in UNITS:
        found = assign_all(u, reg)
        home, search = found["home"], found["search"]
        key = f"{search.experiment_id}:{search.variant}"
        cols.setdefault(key, len(cols))
        table[rows[home.variant], cols[key]] += 1  # type: ignore[index]
    assert len(cols) == 4
    assert stats.chi2_contingency(table).pvalue > 0.001, table


def test_experiments_of_a_layer_are_mutually_exclusive_and_split_by_range() -> None:
    reg = _registry()
    seen = [assign(u, reg, "search").experiment_id for u in UNITS]
    assert set(seen) == {"query", "spell"}
    share = seen.count("query") / len(seen)
    assert abs(share - 0.5) < 4 * np.sqrt(0.25 / len(seen))


def test_ramping_up_keeps_the_units_already_in_the_experiment() -> None:
    before = {u: assign(u, _registry(home_alloc=10), "home") for u in UNITS}
    after = {u: assign(u, _registry(home_alloc=20), "home") for u in UNITS}
    was_in = [u for u, a in before.items() if a.reason == "assigned"]
    now_in = [u for u, a in after.items() if a.reason == "assigned"]
    assert set(was_in) <= set(now_in)
    assert all(before[u].variant == after[u].variant for u in was_in)
    assert abs(len(was_in) / len(UNITS) - 0.10) < 0.01
    assert abs(len(now_in) / len(UNITS) - 0.20) < 0.01
    assert {after[u].reason for u in UNITS if u not in now_in} == {"unallocated"}


def test_the_holdout_is_out_of_every_layer_and_paused_experiments_assign_nobody() -> None:
    reg = _registry(holdout=10)
    held = [u for u in UNITS if assign(u, reg, "home").reason == "holdout"]
    assert abs(len(held) / len(UNITS) - 0.10) < 0.01
    assert all(assign(u, reg, "search").reason == "holdout" for u in held[:300])
    paused = assign(UNITS[0], _registry(), "home", paused={"ranker"})
    assert (paused.reason, paused.variant, paused.experiment_id) == ("paused", None, "ranker")
