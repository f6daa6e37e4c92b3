"""Monte-Carlo checks that the tests keep their promises (vectorized: thousands of experiments).

Tolerances are binomial: a rate estimated from ``sims`` experiments must lie within
``TOL_SD`` standard errors of its nominal value. Seeds are fixed, so the figures are
reproducible; printed with ``-s`` for the closing note.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.power import NormalIndPower

from flywheel.experiments import stats
from flywheel.experiments.sequential import msprt_from_sums

ALPHA = 0.05
TOL_SD = 3.0


def _tolerance(rate: float, sims: int) -> float:
    return TOL_SD * math.sqrt(rate * (1 - rate) / sims)


def test_aa_welch_false_positive_rate_is_nominal_on_skewed_data() -> None:
    sims, n = 2000, 500
    rng = np.random.default_rng(11)
    a = rng.lognormal(0.0, 1.0, (sims, n))  # watch-time-like: heavy right tail
    b = rng.lognormal(0.0, 1.0, (sims, n))
    *_, p, _, _ = stats.welch_from_moments(a.mean(1), a.var(1, ddof=1), n, b.mean(1), b.var(1, ddof=1), n, ALPHA)
    fpr = float((p <= ALPHA).mean())
    print(f"\nA/A Welch (fixed horizon, {sims} experiments): false-positive rate {fpr:.4f}")
    assert abs(fpr - ALPHA) <= _tolerance(ALPHA, sims)


def test_aa_proportions_false_positive_rate_is_nominal() -> None:
    sims, n, p0 = 4000, 5000, 0.05
    rng = np.random.default_rng(12)
    xa, xb = rng.binomial(n, p0, sims), rng.binomial(n, p0, sims)
    _, _, _, p, _, _ = stats.proportions_from_counts(xa, n, xb, n, ALPHA)
    fpr = float((p <= ALPHA).mean())
    print(f"\nA/A difference of proportions ({sims} experiments): false-positive rate {fpr:.4f}")
    assert abs(fpr - ALPHA) <= _tolerance(ALPHA, sims)


def test_aa_cuped_false_positive_rate_is_nominal() -> None:
    sims, n = 1000, 400
    rng = np.random.default_rng(13)
    rejections = 0
    for _ in range(sims):
        x = rng.gamma(2.0, 1.0, 2 * n)
        y = 0.7 * x + rng.gamma(2.0, 0.5, 2 * n)
        adjusted = stats.cuped(y, x).adjusted
        rejections += stats.welch_test(adjusted[:n], adjusted[n:], ALPHA).p_value <= ALPHA
    fpr = rejections / sims
    print(f"\nA/A Welch after CUPED ({sims} experiments): false-positive rate {fpr:.4f}")
    assert abs(fpr - ALPHA) <= _tolerance(ALPHA, sims)


def _peeking(sims: int, n: int, step: int, first: int, effect: float, seed: int):
    rng = np.random.default_rng(seed)
    a = rng.normal(0.0, 1.0, (sims, n))
    b = rng.normal(effect, 1.0, (sims, n))
    looks = np.arange(first, n + 1, step)
    ca, cb = np.cumsum(a, 1)[:, looks - 1], np.cumsum(b, 1)[:, looks - 1]
    qa, qb = np.cumsum(a**2, 1)[:, looks - 1], np.cumsum(b**2, 1)[:, looks - 1]
    p_seq, lo, hi = msprt_from_sums(ca, qa, looks, cb, qb, looks, tau_sd=0.1, alpha=ALPHA)
    ma, mb = ca / looks, cb / looks
    va = (qa - looks * ma**2) / (looks - 1)
    vb = (qb - looks * mb**2) / (looks - 1)
    *_, p_naive, _, _ = stats.welch_from_moments(ma, va, looks, mb, vb, looks, ALPHA)
    return looks, p_seq, lo, hi, p_naive


def test_sequential_test_survives_continuous_peeking_where_naive_peeking_fails() -> None:
    sims, n, step, first = 1000, 2000, 20, 100
    looks, p_seq, lo, hi, p_naive = _peeking(sims, n, step, first, 0.0, seed=21)
    seq_fpr = float((p_seq.min(1) <= ALPHA).mean())
    naive_fpr = float((p_naive.min(1) <= ALPHA).mean())
    last_look_fpr = float((p_naive[:, -1] <= ALPHA).mean())
    cs_miss = float(((lo > 0) | (hi < 0)).any(1).mean())
    print(
        f"\nA/A with {looks.size} looks ({sims} experiments): mSPRT false-positive rate "
        f"{seq_fpr:.4f}; naive t-test peeking {naive_fpr:.4f}; t-test at the last look only "
        f"{last_look_fpr:.4f}; confidence sequence ever excluding 0: {cs_miss:.4f}"
    )
    assert seq_fpr <= ALPHA + _tolerance(ALPHA, sims)
    assert cs_miss <= ALPHA + _tolerance(ALPHA, sims)
    assert naive_fpr > ALPHA + _tolerance(ALPHA, sims)  # peeking at a fixed-horizon test inflates
    assert abs(last_look_fpr - ALPHA) <= _tolerance(ALPHA, sims)


def test_sequential_test_detects_a_real_effect() -> None:
    sims, n = 300, 2000
    _, p_seq, lo, hi, _ = _peeking(sims, n, 20, 100, 0.15, seed=22)
    power = float((p_seq.min(1) <= ALPHA).mean())
    covered = float(((lo <= 0.15) & (hi >= 0.15)).all(1).mean())
    print(f"\nmSPRT with a 0.15 sd effect at n={n}: power {power:.3f}, CS coverage {covered:.3f}")
    assert power >= 0.8
    assert covered >= 1 - ALPHA - _tolerance(ALPHA, sims)


def test_power_simulation_matches_the_calculator_for_means() -> None:
    mde, sd = 0.1, 1.0
    n = stats.sample_size(mde, sd, ALPHA, 0.8)
    reference = NormalIndPower().solve_power(effect_size=mde / sd, alpha=ALPHA, power=0.8)
    assert n == math.ceil(reference) or abs(n - reference) <= 1
    sims = 1500
    rng = np.random.default_rng(31)
    a = rng.normal(0.0, sd, (sims, n))
    b = rng.normal(mde, sd, (sims, n))
    *_, p, _, _ = stats.welch_from_moments(a.mean(1), a.var(1, ddof=1), n, b.mean(1), b.var(1, ddof=1), n, ALPHA)
    empirical = float((p <= ALPHA).mean())
    predicted = float(stats.power_at(n, mde, sd, ALPHA))
    print(
        f"\npower, means: n={n}/arm (statsmodels {reference:.1f}); predicted {predicted:.4f}, "
        f"simulated {empirical:.4f} ({sims} experiments)"
    )
    assert abs(empirical - predicted) <= _tolerance(predicted, sims)


def test_power_simulation_matches_the_calculator_for_proportions() -> None:
    baseline, lift = 0.10, 0.10
    n = stats.sample_size_proportions(baseline, lift, ALPHA, 0.8)
    sims = 3000
    rng = np.random.default_rng(32)
    xa = rng.binomial(n, baseline, sims)
    xb = rng.binomial(n, baseline * (1 + lift), sims)
    _, _, _, p, _, _ = stats.proportions_from_counts(xa, n, xb, n, ALPHA)
    empirical = float((p <= ALPHA).mean())
    print(f"\npower, proportions: n={n}/arm for 10% -> 11%; simulated {empirical:.4f} (target 0.8)")
    assert abs(empirical - 0.8) <= _tolerance(0.8, sims)


@pytest.mark.parametrize("n", [200, 1000, 5000])
def test_power_and_mde_agree_with_statsmodels(n: int) -> None:
    mde, sd = 0.12, 1.3
    ours = float(stats.power_at(n, mde, sd, ALPHA))
    theirs = NormalIndPower().power(effect_size=mde / sd, nobs1=n, alpha=ALPHA, ratio=1.0)
    assert ours == pytest.approx(theirs, abs=1e-9)
    found = stats.minimum_detectable_effect(n, sd, ALPHA, 0.8)
    effect = NormalIndPower().solve_power(nobs1=n, alpha=ALPHA, power=0.8, ratio=1.0)
    assert found == pytest.approx(effect * sd, rel=1e-3)


def test_cuped_reduces_variance_and_stays_unbiased() -> None:
    sims, n, effect, rho = 600, 1000, 0.1, 0.8
    rng = np.random.default_rng(41)
    raw, adjusted, reductions = [], [], []
    treated = np.arange(2 * n) >= n
    for _ in range(sims):
        x = rng.normal(0.0, 1.0, 2 * n)
        y = rho * x + math.sqrt(1 - rho**2) * rng.normal(0.0, 1.0, 2 * n) + effect * treated
        c = stats.cuped(y, x)
        raw.append(y[treated].mean() - y[~treated].mean())
        adjusted.append(c.adjusted[treated].mean() - c.adjusted[~treated].mean())
        reductions.append(c.variance_reduction)
    raw_a, adj_a = np.array(raw), np.array(adjusted)
    ratio = adj_a.var() / raw_a.var()
    print(
        f"\nCUPED (rho={rho}): mean reported variance reduction {np.mean(reductions):.3f} "
        f"(theory {rho**2:.2f}); estimator variance ratio {ratio:.3f} (theory {1 - rho**2:.2f}); "
        f"mean estimate {adj_a.mean():.4f} vs true {effect} (raw {raw_a.mean():.4f})"
    )
    assert np.mean(reductions) == pytest.approx(rho**2, abs=0.03)
    assert ratio == pytest.approx(1 - rho**2, abs=0.08)
    assert abs(adj_a.mean() - effect) <= 4 * adj_a.std(ddof=1) / math.sqrt(sims)


def test_srm_check_rejects_rarely_on_a_correct_split() -> None:
    sims, n, threshold = 4000, 10_000, 0.01
    rng = np.random.default_rng(51)
    flagged = sum(
        stats.sample_ratio_check(
            {"control": int(k), "treatment": n - int(k)}, {"control": 1, "treatment": 1}, threshold
        ).mismatch
        for k in rng.binomial(n, 0.5, sims)
    )
    rate = flagged / sims
    print(f"\nSRM false alarms on a correct 50/50 split at threshold {threshold}: {rate:.4f}")
    assert rate <= threshold + _tolerance(threshold, sims)
