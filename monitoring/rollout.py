"""Meter a canary analysis step with the rollout metrics of :mod:`monitoring.metrics` (wiring only)."""

from __future__ import annotations

from flywheel.serving.rollout_registry import AnalysisStep
from monitoring.metrics import (
    ROLLOUT_CTR,
    ROLLOUT_DECISIONS,
    ROLLOUT_FRACTION,
    ROLLOUT_P_VALUE,
    ROLLOUT_STAGE,
    ROLLOUT_WATCH_PER_IMPRESSION,
)


def observe_step(step: AnalysisStep) -> None:
    """Count the decision and set the stage, fraction, per-variant online metrics and p-values."""
    ROLLOUT_DECISIONS.labels(step.decision.decision).inc()
    ROLLOUT_STAGE.set(step.after.stage)
    ROLLOUT_FRACTION.set(step.after.fraction)
    if step.evidence is None:
        return
    for name, variant in step.evidence.variants.items():
        ROLLOUT_CTR.labels(name).set(variant.ctr)
        ROLLOUT_WATCH_PER_IMPRESSION.labels(name).set(variant.watch_seconds_per_impression)
    for test in step.evidence.tests:
        ROLLOUT_P_VALUE.labels(test.metric).set(test.p_adjusted)
