"""Evaluation plots (ROC, calibration, NDCG by K) written as PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flywheel.config.training import HEAD_NAMES
from flywheel.evaluation.evaluate import Evaluation
from flywheel.evaluation.metrics import calibration


def _roc_points(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-p, kind="stable")
    y = y[order] > 0
    tpr = np.r_[0, np.cumsum(y)] / max(1, y.sum())
    fpr = np.r_[0, np.cumsum(~y)] / max(1, (~y).sum())
    return fpr, tpr


def write_plots(evaluation: Evaluation, folder: str | Path, bins: int = 10) -> list[Path]:
    """Write roc.png, calibration.png and ndcg_by_k.png into ``folder``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    fig, ax = plt.subplots(figsize=(5, 5))
    for i, head in enumerate(HEAD_NAMES):
        fpr, tpr = _roc_points(evaluation.labels[head].to_numpy(), evaluation.probabilities[:, i])
        ax.plot(fpr, tpr, label=head)
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC per head")
    ax.legend()
    paths.append(folder / "roc.png")
    fig.savefig(paths[-1], dpi=80)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 5))
    for i, head in enumerate(HEAD_NAMES):
        cal = calibration(evaluation.labels[head].to_numpy(), evaluation.probabilities[:, i], bins)
        ax.plot(cal.mean_predicted, cal.observed_rate, "o-", label=f"{head} (ECE {cal.ece:.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="mean predicted", ylabel="observed rate", title="Calibration per head")
    ax.legend()
    paths.append(folder / "calibration.png")
    fig.savefig(paths[-1], dpi=80)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curve in evaluation.ndcg_by_k.items():
        ks = sorted(curve)
        ax.plot(ks, [curve[k] for k in ks], "o-", label=name)
    ax.set(xlabel="K", ylabel="NDCG@K", title="NDCG by K")
    ax.legend()
    paths.append(folder / "ndcg_by_k.png")
    fig.savefig(paths[-1], dpi=80)
    plt.close(fig)
    return paths
