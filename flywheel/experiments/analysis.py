"""Analysis of one experiment: per-unit metrics -> SRM check -> tests -> corrections -> guardrails.

The public surface is small and typed so that the serving layer's canary analysis can call it:
:func:`analyze` (events in, :class:`ExperimentAnalysis` out) and :class:`AnalysisSettings`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from flywheel.experiments.catalogue import MetricDefinition, resolve_metric
from flywheel.experiments.config import ExperimentSpec, GuardrailSpec
from flywheel.experiments.guardrails import GuardrailDecision, decide, evaluate_guardrail
from flywheel.experiments.metrics import unit_metrics
from flywheel.experiments.multiple import Correction, adjust
from flywheel.experiments.sequential import SequentialResult, msprt
from flywheel.experiments.stats import (
    Effect,
    SampleRatio,
    cuped,
    proportions_test,
    sample_ratio_check,
    stratified_effect,
    welch_test,
    winsorize,
)

if TYPE_CHECKING:
    from flywheel.config.experiments import ExperimentsConfig

Status = Literal["ok", "insufficient"]


@dataclass(frozen=True, slots=True)
class AnalysisSettings:
    """How to analyse (the statistical part of ``ExperimentsConfig``)."""

    alpha: float = 0.05
    min_units_per_variant: int = 100
    srm_p_threshold: float = 0.001
    winsorize_quantile: float | None = 0.999
    sequential_tau: float = 0.1
    correction: Correction = "bh"
    guardrails: tuple[GuardrailSpec, ...] = ()
    """Guardrails applied to every experiment."""

    @classmethod
    def from_config(cls, config: ExperimentsConfig) -> AnalysisSettings:
        """The settings of a validated configuration section."""
        return cls(
            alpha=config.alpha,
            min_units_per_variant=config.min_units_per_variant,
            srm_p_threshold=config.srm_p_threshold,
            winsorize_quantile=config.winsorize_quantile,
            sequential_tau=config.sequential_tau,
            correction=config.correction,
            guardrails=config.guardrails,
        )


@dataclass(frozen=True, slots=True)
class MetricResult:
    """One metric of one treatment variant against the control."""

    metric: str
    kind: str
    variant: str
    role: Literal["primary", "secondary", "guardrail"]
    status: Status
    message: str
    """Why there is no estimate (``insufficient``), or a short summary."""
    effect: Effect | None = None
    """The headline estimate (CUPED-adjusted when CUPED applied)."""
    unadjusted: Effect | None = None
    """The same test without CUPED."""
    stratified: Effect | None = None
    """Post-stratified estimate (None with a single stratum)."""
    cuped_theta: float | None = None
    cuped_variance_reduction: float | None = None
    """1 - var(adjusted) / var(raw); None when CUPED did not apply."""
    winsorized_at: float | None = None
    """Upper cap applied to the per-unit values (mean metrics)."""
    sequential: SequentialResult | None = None
    p_adjusted: float | None = None
    """p-value corrected across the experiment's metrics and variants (None for guardrail-only)."""
    significant: bool = False
    """Adjusted p-value at or below alpha."""


@dataclass(frozen=True, slots=True)
class ExperimentAnalysis:
    """Everything the analysis of one experiment concluded."""

    experiment_id: str
    control: str
    units: dict[str, int]
    """Units per variant (units seen in two variants excluded)."""
    conflicting_units: int
    """Units whose events named more than one variant (left out)."""
    srm: SampleRatio
    results: tuple[MetricResult, ...]
    guardrails: GuardrailDecision
    alpha: float
    correction: str
    status: Status
    message: str

    def result(self, metric: str, variant: str) -> MetricResult:
        """The result of ``metric`` for ``variant``."""
        for r in self.results:
            if r.metric == metric and r.variant == variant:
                return r
        raise KeyError(f"no result for metric {metric!r} and variant {variant!r}")


def _linearize(num: np.ndarray, den: np.ndarray) -> np.ndarray | None:
    """Per-unit values whose mean is ``sum(num) / sum(den)`` and whose variance is the delta method's."""
    mean_den = den.mean()
    if not mean_den > 0:
        return None
    ratio = num.sum() / den.sum()
    return ratio + (num - ratio * den) / mean_den


def _not_enough(n_c: int, n_t: int, need: int, control: str, variant: str) -> str:
    return f"not enough units (n={n_c} in {control}, n={n_t} in {variant}, need {need} per variant)"


def _metric_result(
    units: pd.DataFrame,
    definition: MetricDefinition,
    spec: ExperimentSpec,
    variant: str,
    role: Literal["primary", "secondary", "guardrail"],
    settings: AnalysisSettings,
) -> MetricResult:
    pair = units[units["variant"].isin([spec.control, variant])]
    if definition.kind == "proportion":
        pair = pair[pair[definition.name].notna()]
    treated = (pair["variant"] == variant).to_numpy()
    n_t, n_c = int(treated.sum()), int((~treated).sum())

    def result(status: Status, message: str, **estimates: Any) -> MetricResult:
        return MetricResult(definition.name, definition.kind, variant, role, status, message, **estimates)

    need = settings.min_units_per_variant
    if min(n_c, n_t) < need:
        msg = _not_enough(n_c, n_t, need, spec.control, variant)
        return result("insufficient", msg)
    alpha = settings.alpha

    if definition.kind == "proportion":
        y = pair[definition.name].to_numpy(float)
        effect = proportions_test(int(y[~treated].sum()), n_c, int(y[treated].sum()), n_t, alpha)
        unadjusted, x, cup, cap = effect, None, None, None
    else:
        if definition.kind == "ratio":
            num, den = definition.numerator or "", definition.denominator or ""
            y_parts = np.empty(len(pair))
            for arm in (treated, ~treated):
                lin = _linearize(pair[num].to_numpy(float)[arm], pair[den].to_numpy(float)[arm])
                if lin is None:
                    msg = f"no {den} in one of the arms: {definition.name} is undefined"
                    return result("insufficient", msg)
                y_parts[arm] = lin
            y, cap = y_parts, None
            x = _linearize(pair[f"pre_{num}"].to_numpy(float), pair[f"pre_{den}"].to_numpy(float))
        else:
            y = pair[definition.name].to_numpy(float)
            x = pair[f"pre_{definition.name}"].to_numpy(float)
            cap = None
            if settings.winsorize_quantile is not None:
                y, cap = winsorize(y, settings.winsorize_quantile)
                x, _ = winsorize(x, settings.winsorize_quantile)
        unadjusted = welch_test(y[~treated], y[treated], alpha)
        cup = cuped(y, x) if spec.cuped and x is not None else None
        if cup is not None and cup.theta != 0.0:
            effect = welch_test(cup.adjusted[~treated], cup.adjusted[treated], alpha, method="cuped")
        else:
            effect, cup = unadjusted, None

    headline = cup.adjusted if cup is not None else y
    strata = pair["stratum"].to_numpy()
    stratified = None
    if spec.stratify_by and np.unique(strata).size > 1:
        try:
            stratified = stratified_effect(y, treated, strata, alpha)
        except ValueError:
            stratified = None
    order = np.argsort(pair["exposure_ms"].to_numpy(), kind="stable")
    sequential = msprt(
        headline[order],
        treated[order],
        tau_sd=settings.sequential_tau,
        alpha=alpha,
        min_units=min(need, max(2, min(n_c, n_t) // 2)),
    )
    summary = f"{effect.relative:+.2%} [{effect.relative_ci_low:+.2%}, {effect.relative_ci_high:+.2%}]"
    return result(
        "ok",
        summary,
        effect=effect,
        unadjusted=unadjusted,
        stratified=stratified,
        cuped_theta=cup.theta if cup else None,
        cuped_variance_reduction=cup.variance_reduction if cup else None,
        winsorized_at=cap,
        sequential=sequential,
    )


def analyze_units(units: pd.DataFrame, spec: ExperimentSpec, settings: AnalysisSettings) -> ExperimentAnalysis:
    """Analyse a per-unit frame (as :func:`flywheel.experiments.metrics.unit_metrics` builds it)."""
    conflicts = int(units["conflict"].sum()) if "conflict" in units else 0
    clean = units[~units["conflict"].astype(bool)] if conflicts else units
    unknown = sorted(set(clean["variant"]) - set(spec.weights))
    counts = {name: int((clean["variant"] == name).sum()) for name in spec.weights}
    srm = sample_ratio_check(counts, spec.weights, settings.srm_p_threshold)

    roles: dict[str, Literal["primary", "secondary", "guardrail"]] = {spec.primary_metric: "primary"}
    for name in spec.metrics:
        roles.setdefault(name, "secondary")
    guardrails = (*settings.guardrails, *spec.guardrails)
    for g in guardrails:
        roles.setdefault(g.metric, "guardrail")
    treatments = [v for v in spec.weights if v != spec.control]
    results = [
        _metric_result(clean, resolve_metric(m), spec, v, role, settings)
        for m, role in roles.items()
        for v in treatments
    ]

    family = [i for i, r in enumerate(results) if r.status == "ok" and r.role != "guardrail" and r.effect]
    if family:
        adjusted = adjust([results[i].effect.p_value for i in family], settings.correction)  # type: ignore[union-attr]
        for i, p_adj in zip(family, adjusted, strict=True):
            results[i] = replace(results[i], p_adjusted=float(p_adj), significant=bool(p_adj <= settings.alpha))

    checks = []
    for g in guardrails:
        definition = resolve_metric(g.metric)
        for r in results:
            if r.metric == g.metric and r.status == "ok" and r.effect and r.sequential:
                checks.append(
                    evaluate_guardrail(
                        g,
                        variant=r.variant,
                        relative_change=r.effect.relative,
                        p_value=r.sequential.p_value,
                        higher_is_better=definition.higher_is_better,
                        alpha=settings.alpha,
                    )
                )
    decision = decide(checks)

    insufficient = [r for r in results if r.status == "insufficient"]
    status: Status = "insufficient" if insufficient and len(insufficient) == len(results) else "ok"
    notes = []
    if status == "insufficient":
        notes.append(insufficient[0].message)
    if srm.mismatch:
        notes.append(
            f"sample ratio mismatch (chi-square p={srm.p_value:.2g} < {settings.srm_p_threshold:g}): "
            "assignment or logging is broken, do not trust the effects"
        )
    if unknown:
        notes.append(f"events name variants outside the configuration: {unknown}")
    if conflicts:
        notes.append(f"{conflicts} units were seen in more than one variant and were left out")
    if decision.pause:
        notes.append("guardrail breached, pause: " + "; ".join(decision.reasons))
    return ExperimentAnalysis(
        experiment_id=spec.id,
        control=spec.control,
        units=counts,
        conflicting_units=conflicts,
        srm=srm,
        results=tuple(results),
        guardrails=decision,
        alpha=settings.alpha,
        correction=settings.correction,
        status=status,
        message="; ".join(notes) if notes else "ok",
    )


def analyze(events: pd.DataFrame, spec: ExperimentSpec, settings: AnalysisSettings | None = None) -> ExperimentAnalysis:
    """Analyse an experiment from an event frame.

    Args:
        events: Events with the columns of :func:`flywheel.experiments.metrics.events_frame`.
        spec: The experiment.
        settings: Test settings (defaults when None).

    Returns:
        The analysis. Metrics of a variant with fewer than ``min_units_per_variant`` units carry
        ``status="insufficient"`` and a message instead of a p-value.
    """
    settings = settings or AnalysisSettings()
    metric_list = [*spec.all_metrics, *(g.metric for g in (*settings.guardrails, *spec.guardrails))]
    units = unit_metrics(events, spec.id, metric_list, stratify_by=spec.stratify_by)
    return analyze_units(units, spec, settings)


def adjust_across(
    analyses: Sequence[ExperimentAnalysis], method: Correction = "bh"
) -> dict[tuple[str, str, str], float]:
    """Correct the raw p-values of several experiments as one family.

    Returns:
        ``(experiment id, metric, variant) -> adjusted p-value`` for every estimated result.
    """
    keys, ps = [], []
    for a in analyses:
        for r in a.results:
            if r.status == "ok" and r.effect is not None and r.role != "guardrail":
                keys.append((a.experiment_id, r.metric, r.variant))
                ps.append(r.effect.p_value)
    return dict(zip(keys, adjust(ps, method).tolist(), strict=True))
