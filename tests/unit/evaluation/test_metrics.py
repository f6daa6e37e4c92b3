"""Metric functions on hand-computed cases."""

import math

import numpy as np
import pytest

from flywheel.evaluation.metrics import (
    average_precision_at_k,
    calibration,
    graded_ndcg,
    head_metrics,
    log_loss,
    matrix_ranking_metrics,
    ndcg_at_k,
    pr_auc,
    ranking_metrics,
    recall_at_k,
    reciprocal_rank,
    roc_auc,
)


def test_roc_auc_counts_ordered_pairs() -> None:
    # positives 0.35, 0.8; negatives 0.1, 0.4: pairs won 0.35>0.1, 0.8>0.1, 0.8>0.4 -> 3 of 4
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)


def test_roc_auc_ties_count_half_and_single_class_is_nan() -> None:
    assert roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)
    assert math.isnan(roc_auc([1, 1], [0.2, 0.3]))


def test_pr_auc_is_average_precision() -> None:
    # ranked: 0.8 (+), 0.4 (-), 0.35 (+), 0.1 (-): precision at the hits 1/1 and 2/3
    assert pr_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx((1 + 2 / 3) / 2)


def test_log_loss_hand_computed() -> None:
    assert log_loss([1, 0], [0.8, 0.4]) == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)


def test_calibration_ece_two_bins() -> None:
    cal = calibration([0, 1, 1, 1], [0.1, 0.15, 0.8, 0.9], bins=2)
    # bin [0, .5): mean .125, rate .5; bin [.5, 1]: mean .85, rate 1 -> .5*.375 + .5*.15
    assert cal.counts == (2, 2)
    assert cal.mean_predicted == pytest.approx((0.125, 0.85))
    assert cal.observed_rate == pytest.approx((0.5, 1.0))
    assert cal.ece == pytest.approx(0.2625)


def test_ranking_metrics_hand_computed() -> None:
    ranked, relevant = ["a", "b", "c", "d"], {"b", "d"}
    assert recall_at_k(ranked, relevant, 3) == pytest.approx(0.5)
    assert ndcg_at_k(ranked, relevant, 3) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert ndcg_at_k(ranked, relevant, 4) == pytest.approx(
        (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    )
    assert average_precision_at_k(ranked, relevant, 3) == pytest.approx(0.5 / 2)
    assert average_precision_at_k(ranked, relevant, 4) == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert reciprocal_rank(ranked, relevant) == pytest.approx(0.5)
    assert reciprocal_rank(ranked, {"z"}) == 0.0


def test_perfect_ranking_scores_one() -> None:
    assert ndcg_at_k(["x", "y", "z"], {"x", "y"}, 10) == pytest.approx(1.0)
    assert average_precision_at_k(["x", "y", "z"], {"x", "y"}, 10) == pytest.approx(1.0)


def test_ranking_metrics_skip_queries_without_relevant_items() -> None:
    out = ranking_metrics([["a", "b"], ["c", "d"]], [{"b"}, set()], ks=(1, 2))
    assert out["queries"] == 1
    assert out["recall@1"] == 0.0
    assert out["recall@2"] == 1.0
    assert out["ndcg@2"] == pytest.approx(1 / math.log2(3))
    assert out["mrr"] == pytest.approx(0.5)


def test_head_metrics_keys() -> None:
    out = head_metrics([0, 1, 0, 1], [0.2, 0.7, 0.3, 0.6], bins=2)
    assert out["auc"] == 1.0
    assert out["base_rate"] == 0.5
    assert out["mean_pred"] == pytest.approx(0.45)


def test_matrix_ranking_metrics_equal_the_list_definitions() -> None:
    rng = np.random.default_rng(5)
    relevant = rng.random((40, 30)) < 0.15
    relevant[3] = False  # a query with nothing relevant is skipped
    top = np.argsort(-rng.random((40, 30)), axis=1)[:, :10]
    fast = matrix_ranking_metrics(top, relevant, (1, 5, 10))
    slow = ranking_metrics([list(t) for t in top], [set(np.flatnonzero(r)) for r in relevant], (1, 5, 10))
    assert fast["queries"] == slow["queries"] == 39
    for k in (1, 5, 10):
        assert fast[f"ndcg@{k}"] == pytest.approx(slow[f"ndcg@{k}"])
        assert fast[f"recall@{k}"] == pytest.approx(slow[f"recall@{k}"])


def test_graded_ndcg_is_one_for_the_ideal_order_and_binary_ndcg_on_binary_gains() -> None:
    rng = np.random.default_rng(8)
    gains = rng.random((25, 40))
    ideal = np.argsort(-gains, axis=1)
    assert graded_ndcg(ideal, gains, (1, 10))[10] == pytest.approx(1.0)
    worst = ideal[:, ::-1]
    assert graded_ndcg(worst, gains, (10,))[10] < 0.5
    binary = rng.random((25, 40)) < 0.2
    binary[:, 0] = True
    top = np.argsort(-rng.random((25, 40)), axis=1)
    assert graded_ndcg(top, binary.astype(float), (5, 10))[5] == pytest.approx(
        matrix_ranking_metrics(top, binary, (5,))["ndcg@5"]
    )
