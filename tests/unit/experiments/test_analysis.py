"""The analysis end to end on generated events: planted effects, too few units, guardrails."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flywheel.experiments.analysis import AnalysisSettings, adjust_across, analyze, analyze_units
from flywheel.experiments.config import ExperimentSpec, GuardrailSpec
from flywheel.experiments.guardrails import paused_experiments, write_decision
from flywheel.experiments.metrics import unit_metrics
from flywheel.experiments.report import render_html, write_report

from .eventgen import event_frame

SPEC = ExperimentSpec(id="exp", primary_metric="ctr", metrics=("watch_hours", "sessions", "day1_active"))


@pytest.fixture(scope="module")
def lifted() -> pd.DataFrame:
    return event_frame(6000, click_lift=0.10, seed=5)


def test_a_planted_ctr_lift_is_recovered_inside_its_interval(lifted: pd.DataFrame) -> None:
    result = analyze(lifted, SPEC)
    ctr = result.result("ctr", "treatment")
    assert ctr.status == "ok" and ctr.effect is not None
    assert ctr.effect.relative_ci_low <= 0.10 <= ctr.effect.relative_ci_high
    assert ctr.effect.relative_ci_low > 0 and ctr.significant
    assert ctr.effect.method == "cuped"
    assert ctr.cuped_variance_reduction is not None and ctr.cuped_variance_reduction > 0.1
    assert not result.srm.mismatch
    assert ctr.p_adjusted is not None and ctr.p_adjusted >= ctr.effect.p_value
    assert ctr.sequential is not None and ctr.sequential.looks > 10


def test_ratio_metric_interval_is_the_delta_method(lifted: pd.DataFrame) -> None:
    units = unit_metrics(lifted, "exp", ["ctr"])
    spec = SPEC.model_copy(update={"cuped": False, "metrics": ()})
    effect = analyze_units(units, spec, AnalysisSettings()).result("ctr", "treatment").effect
    assert effect is not None
    se2 = 0.0
    for arm in ("control", "treatment"):
        u = units[units["variant"] == arm]
        r = u["clicks"].sum() / u["impressions"].sum()
        resid = u["clicks"] - r * u["impressions"]
        se2 += resid.var(ddof=1) / (len(u) * u["impressions"].mean() ** 2)
        assert (effect.treatment_mean if arm == "treatment" else effect.control_mean) == pytest.approx(r)
    assert effect.se == pytest.approx(np.sqrt(se2))


def test_an_aa_experiment_is_not_significant_and_cuped_is_unbiased() -> None:
    result = analyze(event_frame(3000, seed=8), SPEC)
    for r in result.results:
        assert r.status == "ok"
        assert r.effect is not None and r.effect.ci_low <= 0 <= r.effect.ci_high, r
    assert not result.guardrails.pause


def test_too_few_units_says_so_instead_of_a_p_value() -> None:
    result = analyze(event_frame(120, seed=3), SPEC, AnalysisSettings(min_units_per_variant=100))
    assert result.status == "insufficient"
    for r in result.results:
        assert r.status == "insufficient" and r.effect is None and r.p_adjusted is None
        assert r.message.startswith("not enough units (n=")
        assert "need 100 per variant" in r.message
    assert "not enough units (n=" in result.message
    assert "p=" not in render_html(result).split("<table>")[1].split("</table>")[0]


def test_a_guardrail_breach_pauses_the_experiment(tmp_path: Path) -> None:
    events = event_frame(6000, watch_lift=-0.30, seed=9)
    settings = AnalysisSettings(guardrails=(GuardrailSpec(metric="watch_hours", max_relative_degradation=0.05),))
    result = analyze(events, SPEC, settings)
    assert result.guardrails.pause
    assert "watch_hours (treatment) changed" in result.guardrails.reasons[0]
    write_decision(tmp_path, "exp", result.guardrails)
    assert paused_experiments(tmp_path) == frozenset({"exp"})
    calm = analyze(event_frame(6000, seed=10), SPEC, settings)
    assert not calm.guardrails.pause


def test_srm_is_reported_by_the_analysis(lifted: pd.DataFrame) -> None:
    units = unit_metrics(lifted, "exp", list(SPEC.all_metrics))
    control = units.index[units["variant"] == "control"]
    skewed = units.drop(control[: int(0.1 * len(control))])
    result = analyze_units(skewed, SPEC, AnalysisSettings())
    assert result.srm.mismatch
    assert "sample ratio mismatch" in result.message


def test_several_experiments_are_corrected_together(lifted: pd.DataFrame) -> None:
    one = analyze(lifted, SPEC)
    adjusted = adjust_across([one, one], "bonferroni")
    ctr = one.result("ctr", "treatment").effect
    assert ctr is not None
    assert adjusted[("exp", "ctr", "treatment")] == pytest.approx(min(1.0, ctr.p_value * 8))


def test_the_report_is_a_self_contained_html_file(lifted: pd.DataFrame, tmp_path: Path) -> None:
    path = write_report(analyze(lifted, SPEC), tmp_path)
    text = path.read_text()
    assert path.name == "exp.html" and text.startswith("<!doctype html>")
    assert text.count("data:image/png;base64,") == 3
    assert "ctr" in text and "cuped" in text
