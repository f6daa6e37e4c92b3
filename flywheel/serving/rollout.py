"""Automatic canary analysis: the evidence from the logs, and the decision as pure rules.

Evidence (:func:`gather_evidence`):

1. The prediction log, read with :func:`flywheel.serving.attribution.prediction_frame`, narrowed
   to the rollout's champion and canary records (shadow answers were never shown).
2. Feedback events attributed to the request that served the title
   (:func:`flywheel.serving.attribution.attribute`).
3. The unit is a user in a variant: a user the ramp moved from the champion to the canary counts
   once in each, so no request is thrown away (:func:`flywheel.serving.attribution.unit_frame`).
4. The experiments library judges the metrics (:func:`flywheel.experiments.analysis.analyze_units`):
   the delta method for ratios, and the always-valid mSPRT whose p-value stays valid however
   often a rollout is analysed; its p-values are Bonferroni-corrected over the metrics.
5. The sample-ratio check runs on the users of the current stage (their first request in it)
   against the stage's fraction, with the library's chi-square test.
6. Guardrails come from the prediction log: error rate and p99 latency per variant.

Decision (:func:`decide`), in this order: no running rollout -> hold; a guardrail breached ->
roll back; a sample-ratio mismatch -> hold (the data cannot be trusted); a metric significantly
worse -> roll back; at the last stage with enough impressions and the primary metric
significantly better -> promote; the horizon reached -> hold as inconclusive; too few canary
impressions in the stage, or too few units to test the primary metric -> hold; otherwise raise
the fraction to the next stage (at the last stage: hold until a decision).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from flywheel.experiments.analysis import AnalysisSettings, analyze_units
from flywheel.experiments.catalogue import resolve_metric
from flywheel.experiments.config import ExperimentSpec, VariantSpec
from flywheel.experiments.multiple import bonferroni
from flywheel.experiments.stats import SampleRatio, sample_ratio_check
from flywheel.serving.attribution import attribute, unit_frame
from flywheel.serving.routing import RolloutStatus, fraction_at, next_stage

if TYPE_CHECKING:
    from flywheel.config.rollout import RolloutConfig

Decision = Literal["raise", "promote", "rollback", "hold"]
CHAMPION, CANARY = "champion", "canary"


@dataclass(frozen=True, slots=True)
class RolloutRecord:
    """The live rollout as the analysis needs it: the contract's tags (the server's
    :class:`flywheel.serving.routing.RolloutState`) plus when the stage began and the two versions."""

    rollout_id: str | None
    status: RolloutStatus
    stage: int
    """Index into the schedule."""
    fraction: float
    """Share of users on the canary, 0..1."""
    stage_started_ms: int
    champion_version: str | None = None
    canary_version: str | None = None


@dataclass(frozen=True, slots=True)
class VariantEvidence:
    """What one variant served and earned."""

    variant: str
    requests: int
    errors: int
    error_rate: float
    p99_latency_ms: float
    users: int
    impressions: int
    clicks: int
    ctr: float
    watch_seconds_per_impression: float


@dataclass(frozen=True, slots=True)
class MetricTest:
    """One metric, canary against champion, with the always-valid test."""

    metric: str
    role: Literal["primary", "secondary"]
    status: Literal["ok", "insufficient"]
    message: str
    champion_mean: float = math.nan
    canary_mean: float = math.nan
    relative: float = math.nan
    """canary / champion - 1."""
    p_value: float = 1.0
    """Always-valid (mSPRT) p-value over every look so far."""
    p_adjusted: float = 1.0
    """Bonferroni-corrected over the rollout's metrics."""
    significant: bool = False
    direction: Literal["better", "worse", "none"] = "none"
    """Which way a significant difference goes for the users (the metric's own sense)."""


@dataclass(frozen=True, slots=True)
class Evidence:
    """Everything a decision is based on."""

    rollout_id: str
    stage: int
    fraction: float
    variants: dict[str, VariantEvidence]
    tests: tuple[MetricTest, ...]
    srm: SampleRatio
    """Users of the current stage per variant against the stage's fraction."""
    stage_canary_impressions: int
    canary_impressions: int


@dataclass(frozen=True, slots=True)
class RolloutDecision:
    """What to do, why, and the stage and fraction after it."""

    decision: Decision
    reason: str
    stage: int
    fraction: float


def variant_evidence(predictions: pd.DataFrame, attributed: pd.DataFrame, variant: str) -> VariantEvidence:
    """Requests, errors, latency, impressions, clicks and watch time of one variant."""
    mine = predictions[predictions["variant"] == variant]
    fb = attributed[attributed["variant"] == variant]
    requests = len(mine)
    errors = int(mine["error"].notna().sum())
    latency = mine["latency_ms"].dropna().to_numpy(float)
    impressions = int((fb["event_type"] == "impression").sum())
    clicks = int((fb["event_type"] == "click").sum())
    ends = fb["event_type"].isin(("playback.stopped", "playback.completed"))
    watch = float(pd.to_numeric(fb.loc[ends, "watch_seconds"], errors="coerce").fillna(0.0).sum())
    return VariantEvidence(
        variant=variant,
        requests=requests,
        errors=errors,
        error_rate=errors / requests if requests else 0.0,
        p99_latency_ms=float(np.percentile(latency, 99)) if latency.size else math.nan,
        users=int(mine["user_id"].nunique()),
        impressions=impressions,
        clicks=clicks,
        ctr=clicks / impressions if impressions else 0.0,
        watch_seconds_per_impression=watch / impressions if impressions else 0.0,
    )


def stage_sample_ratio(predictions: pd.DataFrame, *, since_ms: int, fraction: float, threshold: float) -> SampleRatio:
    """Chi-square check of the stage's users per variant (first request since ``since_ms``) against ``fraction``."""
    stage = predictions[predictions["timestamp_ms"] >= since_ms].sort_values("timestamp_ms", kind="stable")
    first = stage.groupby("user_id")["variant"].first()
    counts = {name: int((first == name).sum()) for name in (CHAMPION, CANARY)}
    return sample_ratio_check(counts, {CHAMPION: 1.0 - fraction, CANARY: fraction}, threshold)


def metric_tests(
    units: pd.DataFrame, rollout_id: str, fraction: float, config: RolloutConfig
) -> tuple[MetricTest, ...]:
    """Test every configured metric, canary against champion, with the experiments library."""
    spec = ExperimentSpec(
        id=rollout_id,
        variants=(VariantSpec(name=CHAMPION, weight=1.0 - fraction), VariantSpec(name=CANARY, weight=fraction)),
        control=CHAMPION,
        primary_metric=config.primary_metric,
        metrics=tuple(m for m in config.metrics if m != config.primary_metric),
        stratify_by=None,
        cuped=False,
    )
    settings = AnalysisSettings(
        alpha=config.alpha,
        min_units_per_variant=config.min_units_per_variant,
        srm_p_threshold=config.srm_p_threshold,
        winsorize_quantile=None,
        sequential_tau=config.sequential_tau,
        correction="bonferroni",
    )
    analysis = analyze_units(units, spec, settings)
    names = [spec.primary_metric, *spec.metrics]
    ps = [
        r.sequential.p_value if r.status == "ok" and r.sequential is not None else 1.0
        for r in (analysis.result(m, CANARY) for m in names)
    ]
    adjusted = bonferroni(ps)
    tests = []
    for name, p_adj in zip(names, adjusted.tolist(), strict=True):
        r = analysis.result(name, CANARY)
        role: Literal["primary", "secondary"] = "primary" if name == spec.primary_metric else "secondary"
        if r.status != "ok" or r.effect is None or r.sequential is None:
            tests.append(MetricTest(name, role, "insufficient", r.message))
            continue
        significant = bool(p_adj <= config.alpha)
        good = (r.effect.difference > 0) == resolve_metric(name).higher_is_better
        direction: Literal["better", "worse", "none"] = ("better" if good else "worse") if significant else "none"
        tests.append(
            MetricTest(
                name,
                role,
                "ok",
                r.message,
                champion_mean=r.effect.control_mean,
                canary_mean=r.effect.treatment_mean,
                relative=r.effect.relative,
                p_value=r.sequential.p_value,
                p_adjusted=float(p_adj),
                significant=significant,
                direction=direction,
            )
        )
    return tuple(tests)


def gather_evidence(
    predictions: pd.DataFrame, events: pd.DataFrame, state: RolloutRecord, config: RolloutConfig
) -> Evidence:
    """The evidence of the running rollout from the prediction log and the feedback events.

    Raises:
        ValueError: ``state`` has no rollout id.
    """
    if state.rollout_id is None:
        raise ValueError("no rollout has been started: nothing to analyse")
    mine = predictions[
        (predictions["rollout_id"] == state.rollout_id) & predictions["variant"].isin((CHAMPION, CANARY))
    ]
    attributed = attribute(mine, events, int(config.attribution_window_minutes * 60_000))
    variants = {v: variant_evidence(mine, attributed, v) for v in (CHAMPION, CANARY)}
    tests = metric_tests(unit_frame(mine, attributed), state.rollout_id, state.fraction, config)
    srm = stage_sample_ratio(
        mine,
        since_ms=state.stage_started_ms + int(config.srm_grace_seconds * 1000),
        fraction=state.fraction,
        threshold=config.srm_p_threshold,
    )
    canary = attributed[(attributed["variant"] == CANARY) & (attributed["event_type"] == "impression")]
    return Evidence(
        rollout_id=state.rollout_id,
        stage=state.stage,
        fraction=state.fraction,
        variants=variants,
        tests=tests,
        srm=srm,
        stage_canary_impressions=int((canary["prediction_ms"] >= state.stage_started_ms).sum()),
        canary_impressions=len(canary),
    )


# --- decision rules (pure) ------------------------------------------------------------------------


def guardrail_breaches(champion: VariantEvidence, canary: VariantEvidence, config: RolloutConfig) -> list[str]:
    """The guardrails the canary breaks (empty when none, or before both arms have enough requests)."""
    if min(champion.requests, canary.requests) < config.guardrail_min_requests:
        return []
    breaches = []
    excess = canary.error_rate - champion.error_rate
    if excess > config.max_error_rate_increase:
        breaches.append(
            f"error rate {canary.error_rate:.2%} vs champion {champion.error_rate:.2%} "
            f"(+{excess:.2%} > {config.max_error_rate_increase:.2%} allowed)"
        )
    c99, k99 = champion.p99_latency_ms, canary.p99_latency_ms
    if (
        not math.isnan(c99)
        and not math.isnan(k99)
        and k99 > c99 * config.max_p99_ratio
        and k99 - c99 > config.min_p99_excess_ms
    ):
        breaches.append(
            f"p99 latency {k99:.1f} ms vs champion {c99:.1f} ms "
            f"(over {config.max_p99_ratio:g}x and {config.min_p99_excess_ms:g} ms)"
        )
    return breaches


def _fmt(test: MetricTest) -> str:
    return f"{test.metric} {test.relative:+.2%} (always-valid p={test.p_adjusted:.3g})"


def decide(evidence: Evidence, state: RolloutRecord, config: RolloutConfig) -> RolloutDecision:
    """The next step of a rollout (see the module docstring for the order of the rules)."""

    def hold(reason: str) -> RolloutDecision:
        return RolloutDecision("hold", reason, state.stage, state.fraction)

    if state.status != "running":
        return hold(f"no rollout is running (status {state.status})")
    breaches = guardrail_breaches(evidence.variants[CHAMPION], evidence.variants[CANARY], config)
    if breaches:
        return RolloutDecision("rollback", "guardrail breached: " + "; ".join(breaches), state.stage, 0.0)
    if evidence.srm.mismatch:
        return hold(
            f"sample ratio mismatch in stage {state.stage} (users {evidence.srm.counts}, chi-square "
            f"p={evidence.srm.p_value:.2g} < {config.srm_p_threshold:g}): assignment or logging is broken"
        )
    worse = [t for t in evidence.tests if t.direction == "worse"]
    if worse:
        return RolloutDecision(
            "rollback", "canary significantly worse: " + "; ".join(_fmt(t) for t in worse), state.stage, 0.0
        )
    last = len(config.schedule) - 1
    enough = evidence.stage_canary_impressions >= config.min_impressions_per_stage
    primary = next(t for t in evidence.tests if t.role == "primary")
    if state.stage >= last and enough and primary.direction == "better":
        return RolloutDecision("promote", "canary significantly better: " + _fmt(primary), state.stage, 1.0)
    if evidence.canary_impressions >= config.horizon_impressions:
        return hold(
            f"horizon reached ({evidence.canary_impressions} >= {config.horizon_impressions} canary impressions) "
            "without a significant difference: inconclusive, a person decides"
        )
    if not enough:
        return hold(
            f"collecting: {evidence.stage_canary_impressions} of {config.min_impressions_per_stage} "
            f"canary impressions in stage {state.stage}"
        )
    if primary.status != "ok":
        return hold(f"collecting: {primary.metric} cannot be tested yet, {primary.message}")
    nxt = next_stage(config.schedule, state.stage)
    if nxt is not None:
        fraction = fraction_at(config.schedule, nxt)
        return RolloutDecision(
            "raise",
            f"stage {state.stage} passed with {evidence.stage_canary_impressions} canary impressions and no "
            f"significant harm: fraction {state.fraction:g} -> {fraction:g}",
            nxt,
            fraction,
        )
    # the always-valid p-value decides, not the fixed-sample interval of ``primary.message`` (which can
    # leave out 0 while the sequential test, valid at every look, is not yet convinced)
    return hold(f"last stage: not yet significantly different at {config.alpha:g}: {_fmt(primary)}")


def evidence_record(evidence: Evidence) -> dict[str, Any]:
    """The evidence as JSON-ready data (NaN as null)."""
    from dataclasses import asdict

    return _json_ready(asdict(evidence))


def _json_ready(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        return _json_ready(value.item())
    return value
