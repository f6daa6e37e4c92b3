"""The promotion gate's rules with exact thresholds."""

from flywheel.config.training import HEAD_NAMES, PromotionConfig
from flywheel.evaluation.gate import promotion_gate


def _metrics(ndcg: float = 0.30, champion: float | None = None, ece: float = 0.02) -> dict[str, float]:
    m = {"two_stage.ndcg@10": ndcg, "popularity.ndcg@10": 0.20, "latency.ranker_p99_ms": 1.0}
    for h in HEAD_NAMES:
        m[f"heads.{h}.ece"] = ece
        m[f"heads.{h}.auc"] = 0.75
    if champion is not None:
        m["champion.two_stage.ndcg@10"] = champion
        for h in HEAD_NAMES:
            m[f"champion.heads.{h}.auc"] = 0.75
    return m


def test_passes_without_champion() -> None:
    decision = promotion_gate(_metrics(), PromotionConfig())
    assert decision.passed and not decision.has_champion


def test_must_beat_champion_by_the_relative_margin() -> None:
    config = PromotionConfig(min_relative_gain=0.10)
    assert promotion_gate(_metrics(ndcg=0.33, champion=0.30), config).passed  # 0.33 >= 0.30 * 1.1
    failed = promotion_gate(_metrics(ndcg=0.32, champion=0.30), config)
    assert not failed.passed
    assert any(r.startswith("champion:") for r in failed.reasons)


def test_a_tie_does_not_beat_the_champion() -> None:
    config = PromotionConfig(min_relative_gain=0.0, min_absolute_gain=0.0)
    assert not promotion_gate(_metrics(ndcg=0.30, champion=0.30), config).passed


def test_margins_set_below_the_champion_accept_a_slightly_worse_candidate() -> None:
    config = PromotionConfig(min_relative_gain=-0.1, min_absolute_gain=-0.1)
    assert promotion_gate(_metrics(ndcg=0.28, champion=0.30), config).passed  # 0.28 >= 0.30 * 0.9
    assert not promotion_gate(_metrics(ndcg=0.26, champion=0.30), config).passed


def test_calibration_latency_and_baseline_guardrails() -> None:
    config = PromotionConfig(max_ece=0.05, max_latency_ms_p99=0.5, min_ndcg_vs_popularity=1.6)
    decision = promotion_gate(_metrics(ece=0.06), config)
    kinds = {r.split(":")[0] for r in decision.reasons}
    assert kinds == {"calibration", "latency", "baseline"}  # 0.30 < 1.6 * 0.20


def test_auc_drop_guardrail() -> None:
    m = _metrics(ndcg=0.40, champion=0.30)
    m["heads.like.auc"] = 0.70  # champion 0.75, allowed drop 0.02
    decision = promotion_gate(m, PromotionConfig())
    assert decision.reasons == ("guardrail: like AUC 0.7000 dropped more than 0.02 below 0.7500",)
