"""Guardrail metrics: a treatment that makes one of them worse than its threshold is paused.

Guardrails are watched continuously, so the rule uses the always-valid (sequential) p-value:
a breach needs both

1. a relative change in the harmful direction larger than the tolerated degradation, and
2. an always-valid p-value at or below alpha (the harm is not noise, however often one looks).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flywheel.experiments.config import GuardrailSpec
from flywheel.files import replace_text


@dataclass(frozen=True, slots=True)
class GuardrailCheck:
    """One guardrail metric of one treatment variant."""

    metric: str
    variant: str
    max_relative_degradation: float
    relative_change: float
    p_value: float
    breached: bool
    reason: str


@dataclass(frozen=True, slots=True)
class GuardrailDecision:
    """Whether to pause the experiment, and why."""

    pause: bool
    checks: tuple[GuardrailCheck, ...]

    @property
    def reasons(self) -> list[str]:
        """The reasons of the breached checks."""
        return [c.reason for c in self.checks if c.breached]


def evaluate_guardrail(
    spec: GuardrailSpec,
    *,
    variant: str,
    relative_change: float,
    p_value: float,
    higher_is_better: bool,
    alpha: float,
) -> GuardrailCheck:
    """Check one guardrail for one variant.

    Args:
        spec: The guardrail.
        variant: The treatment variant.
        relative_change: Treatment / control - 1 of the metric.
        p_value: The always-valid p-value of the difference.
        higher_is_better: Direction of the metric.
        alpha: Significance level.
    """
    harm = -relative_change if higher_is_better else relative_change
    if math.isnan(harm):
        breached, reason = False, f"{spec.metric} ({variant}): no estimate"
    else:
        breached = harm > spec.max_relative_degradation and p_value <= alpha
        reason = (
            f"{spec.metric} ({variant}) changed {relative_change:+.2%}, beyond the tolerated "
            f"{spec.max_relative_degradation:.2%} degradation (always-valid p={p_value:.3g})"
            if breached
            else f"{spec.metric} ({variant}) within its guardrail ({relative_change:+.2%})"
        )
    return GuardrailCheck(
        spec.metric, variant, spec.max_relative_degradation, relative_change, p_value, breached, reason
    )


def decide(checks: Sequence[GuardrailCheck]) -> GuardrailDecision:
    """Pause when any check is breached."""
    return GuardrailDecision(pause=any(c.breached for c in checks), checks=tuple(checks))


DECISION_SUFFIX = ".decision.json"


def write_decision(folder: Path, experiment_id: str, decision: GuardrailDecision) -> Path:
    """Record the decision as ``<folder>/<experiment id>.decision.json`` (replaced atomically).

    :func:`paused_experiments` reads these back so that assignment stops serving a paused
    experiment without anyone editing the registry.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{experiment_id}{DECISION_SUFFIX}"
    body = {"experiment_id": experiment_id, "pause": decision.pause, "reasons": decision.reasons}
    replace_text(path, json.dumps(body, indent=2))
    return path


def paused_experiments(folder: Path) -> frozenset[str]:
    """Ids of the experiments whose recorded decision is to pause."""
    if not folder.is_dir():
        return frozenset()
    paused = set()
    for path in folder.glob(f"*{DECISION_SUFFIX}"):
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if body.get("pause"):
            paused.add(str(body["experiment_id"]))
    return frozenset(paused)
