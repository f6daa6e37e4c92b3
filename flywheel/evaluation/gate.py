"""The promotion gate: pure rules over evaluation metrics (margins against the champion, guardrails)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from flywheel.config.training import HEAD_NAMES, PromotionConfig


@dataclass(frozen=True)
class GateDecision:
    """Whether a candidate passes, and why (one line per failed rule) ."""

    passed: bool
    reasons: tuple[str, ...]
    has_champion: bool

    def summary(self) -> str:
        """One human sentence."""
        if self.passed:
            return "passed every rule" + ("" if self.has_champion else " (no champion to beat)")
        return "failed: " + "; ".join(self.reasons)


def popularity_baseline(metrics: Mapping[str, float]) -> tuple[str, float, float]:
    """The view the NDCG rules read (``""``: logged, ``"catalog."``: a window without logged
    impressions, imported interactions) and the two stages' and popularity's NDCG@10 there (NaN
    when missing)."""
    view = "catalog." if metrics.get("view.logged", 1.0) == 0 else ""
    return view, metrics.get(f"{view}two_stage.ndcg@10", math.nan), metrics.get(f"{view}popularity.ndcg@10", math.nan)


def promotion_gate(metrics: Mapping[str, float], config: PromotionConfig) -> GateDecision:
    """Decide whether the candidate whose evaluation gave ``metrics`` may become challenger.

    Where the window logs no impressions (``view.logged`` = 0: imported interactions), the
    NDCG rules read the catalog view (``catalog.`` metrics), the only ranking metric there.

    Rules: every head's ECE <= ``max_ece``; ranker p99 latency <= ``max_latency_ms_p99``;
    two-stage NDCG@10 >= ``min_ndcg_vs_popularity`` x popularity's; and when the metrics hold
    the champion's (``champion.*``): the candidate's ``metric`` must reach
    champion x (1 + min_relative_gain) and champion + min_absolute_gain and be strictly above
    the champion, and no head's AUC may drop more than ``max_auc_drop``.
    """
    reasons: list[str] = []
    for head in HEAD_NAMES:
        ece = metrics.get(f"heads.{head}.ece", math.nan)
        if not ece <= config.max_ece:
            reasons.append(f"calibration: {head} ECE {ece:.4f} > {config.max_ece}")
    p99 = metrics.get("latency.ranker_p99_ms", math.nan)
    if not p99 <= config.max_latency_ms_p99:
        reasons.append(f"latency: ranker p99 {p99:.2f} ms > {config.max_latency_ms_p99} ms")
    view, ours, pop = popularity_baseline(metrics)
    if not ours >= config.min_ndcg_vs_popularity * pop:
        reasons.append(
            f"baseline: {view}two-stage NDCG@10 {ours:.4f} < {config.min_ndcg_vs_popularity} x popularity {pop:.4f}"
        )
    metric = config.metric if config.metric.startswith("catalog.") else view + config.metric
    champ_key = (
        metric.replace("catalog.", "catalog.champion.", 1) if metric.startswith("catalog.") else "champion." + metric
    )
    has_champion = champ_key in metrics
    if has_champion:
        cand, champ = metrics.get(metric, math.nan), metrics[champ_key]
        need = max(champ * (1 + config.min_relative_gain), champ + config.min_absolute_gain)
        # a tie never passes, unless the margins were set below the champion on purpose
        if not (cand >= need and (cand > champ or need < champ)):
            reasons.append(
                f"champion: {metric} {cand:.4f} does not beat the champion's {champ:.4f} (needs >= {need:.4f})"
            )
        for head in HEAD_NAMES:
            a, c = metrics.get(f"heads.{head}.auc", math.nan), metrics.get(f"champion.heads.{head}.auc", math.nan)
            if not math.isnan(c) and not a >= c - config.max_auc_drop:
                reasons.append(f"guardrail: {head} AUC {a:.4f} dropped more than {config.max_auc_drop} below {c:.4f}")
    elif metric not in metrics:
        reasons.append(f"metric {metric} missing from the evaluation")
    return GateDecision(passed=not reasons, reasons=tuple(reasons), has_champion=has_champion)
