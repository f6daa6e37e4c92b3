"""The numbers equal scipy's and statsmodels' on the same inputs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from flywheel.experiments import stats
from flywheel.experiments.multiple import adjust, benjamini_hochberg, bonferroni


def test_welch_equals_scipy() -> None:
    rng = np.random.default_rng(1)
    control, treatment = rng.lognormal(0, 1, 300), rng.lognormal(0.1, 1.3, 450)
    ours = stats.welch_test(control, treatment, alpha=0.05)
    ref = st.ttest_ind(treatment, control, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert ours.df == pytest.approx(ref.df, rel=1e-12)
    assert (ours.ci_low, ours.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert ours.difference == pytest.approx(treatment.mean() - control.mean())


def test_proportions_equal_statsmodels() -> None:
    x_c, n_c, x_t, n_t = 480, 5000, 545, 5100
    ours = stats.proportions_test(x_c, n_c, x_t, n_t, alpha=0.05)
    z, p = proportions_ztest([x_t, x_c], [n_t, n_c])
    low, high = confint_proportions_2indep(x_t, n_t, x_c, n_c, method="wald", compare="diff")
    assert ours.statistic == pytest.approx(z, rel=1e-12)
    assert ours.p_value == pytest.approx(p, rel=1e-10)
    assert (ours.ci_low, ours.ci_high) == pytest.approx((low, high), rel=1e-10)
    assert ours.relative == pytest.approx((x_t / n_t) / (x_c / n_c) - 1)


def test_relative_interval_covers_like_the_delta_method_says() -> None:
    rng = np.random.default_rng(2)
    sims, n, true = 2000, 400, 0.05
    a = rng.exponential(1.0, (sims, n))
    b = rng.exponential(1.0 + true, (sims, n))
    covered = 0
    for i in range(sims):
        lift, lo, hi = stats.relative_interval(
            a[i].mean(), a[i].std(ddof=1) / np.sqrt(n), b[i].mean(), b[i].std(ddof=1) / np.sqrt(n)
        )
        covered += lo <= true <= hi
    assert abs(covered / sims - 0.95) <= 3 * np.sqrt(0.95 * 0.05 / sims)


def test_multiple_testing_equals_statsmodels() -> None:
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.5, 0.9])
    assert benjamini_hochberg(p) == pytest.approx(multipletests(p, method="fdr_bh")[1])
    assert bonferroni(p) == pytest.approx(multipletests(p, method="bonferroni")[1])
    shuffled = p[[3, 9, 0, 5, 1, 8, 2, 7, 4, 6]]
    assert adjust(shuffled, "bh") == pytest.approx(multipletests(shuffled, method="fdr_bh")[1])
    assert benjamini_hochberg([]).size == 0


def test_srm_flags_a_50_50_experiment_that_ran_at_52_48() -> None:
    weights = {"control": 50, "treatment": 50}
    flagged = stats.sample_ratio_check({"control": 5200, "treatment": 4800}, weights)
    assert flagged.mismatch
    assert flagged.p_value == pytest.approx(st.chisquare([5200, 4800]).pvalue)
    assert flagged.chi2 == pytest.approx(16.0)
    few = stats.sample_ratio_check({"control": 520, "treatment": 480}, weights)
    assert not few.mismatch  # the same split on 1,000 units is within chance


def test_cuped_theta_is_the_regression_slope() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=1000)
    y = 2.5 * x + rng.normal(size=1000)
    result = stats.cuped(y, x)
    assert result.theta == pytest.approx(st.linregress(x, y).slope)
    assert result.adjusted.mean() == pytest.approx(y.mean())
    assert result.variance_reduction == pytest.approx(st.pearsonr(x, y)[0] ** 2, rel=1e-9)
    flat = stats.cuped(y, np.ones_like(y))
    assert (flat.theta, flat.variance_reduction) == (0.0, 0.0)


def test_winsorize_caps_at_the_pooled_quantile() -> None:
    values = np.arange(1, 101, dtype=float)
    capped, cap = stats.winsorize(values, 0.9)
    assert cap == pytest.approx(np.quantile(values, 0.9))
    assert capped.max() == cap and capped[:90].tolist() == values[:90].tolist()


def test_stratified_estimate_weights_strata_by_their_share() -> None:
    y = np.array([1.0, 1.2, 2.0, 2.2, 10.0, 10.4, 12.0, 12.4, 12.2, 10.2])
    treated = np.array([0, 0, 1, 1, 0, 0, 1, 1, 1, 0], dtype=bool)
    strata = np.array(["a"] * 4 + ["b"] * 6)
    e = stats.stratified_effect(y, treated, strata)
    d_a = y[2:4].mean() - y[0:2].mean()
    d_b = y[[6, 7, 8]].mean() - y[[4, 5, 9]].mean()
    assert e.difference == pytest.approx(0.4 * d_a + 0.6 * d_b)
    var = 0.4**2 * (y[2:4].var(ddof=1) / 2 + y[0:2].var(ddof=1) / 2) + 0.6**2 * (
        y[[6, 7, 8]].var(ddof=1) / 3 + y[[4, 5, 9]].var(ddof=1) / 3
    )
    assert e.se == pytest.approx(np.sqrt(var))


def test_sample_size_equals_statsmodels_and_rejects_nonsense() -> None:
    from statsmodels.stats.power import NormalIndPower

    n = stats.sample_size(0.05, 1.0, 0.05, 0.9)
    ref = NormalIndPower().solve_power(effect_size=0.05, alpha=0.05, power=0.9)
    assert n == int(np.ceil(ref))
    with pytest.raises(ValueError):
        stats.sample_size(0.0, 1.0)
    with pytest.raises(ValueError):
        stats.sample_size_proportions(0.95, 0.1)
