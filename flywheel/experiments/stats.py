"""Fixed-horizon statistics: tests, intervals, CUPED, winsorization, stratification, power.

Every difference is ``treatment - control``. The vectorized ``*_from_moments`` functions take
numpy arrays (one element per comparison) so that simulations of thousands of experiments run
through the same code as a single analysis. scipy supplies the distributions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats as st

ArrayLike = npt.ArrayLike
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Effect:
    """The estimated difference between a treatment and its control, with its test."""

    method: str
    """``welch``, ``proportions``, ``cuped`` or ``stratified``."""
    n_control: int
    n_treatment: int
    control_mean: float
    treatment_mean: float
    difference: float
    """treatment mean - control mean."""
    se: float
    ci_low: float
    ci_high: float
    relative: float
    """treatment mean / control mean - 1 (nan when the control mean is 0)."""
    relative_ci_low: float
    relative_ci_high: float
    statistic: float
    p_value: float
    df: float | None = None
    """Degrees of freedom (Welch), None for z-tests."""


def welch_from_moments(
    mean_c: ArrayLike,
    var_c: ArrayLike,
    n_c: ArrayLike,
    mean_t: ArrayLike,
    var_t: ArrayLike,
    n_t: ArrayLike,
    alpha: float = 0.05,
) -> tuple[Floats, Floats, Floats, Floats, Floats, Floats, Floats]:
    """Welch's unequal-variance t-test from sample moments (``var`` with ddof=1).

    The statistic and p-value are scipy's (``scipy.stats.ttest_ind_from_stats``, vectorized);
    the Welch-Satterthwaite degrees of freedom, which scipy does not return, give the interval.

    Returns:
        ``(difference, se, df, t, p_value, ci_low, ci_high)``, two-sided, as arrays.
    """
    mc, vc, nc = (np.asarray(a, dtype=float) for a in (mean_c, var_c, n_c))
    mt, vt, nt = (np.asarray(a, dtype=float) for a in (mean_t, var_t, n_t))
    qc, qt = vc / nc, vt / nt
    se = np.sqrt(qc + qt)
    diff = mt - mc
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (qc + qt) ** 2 / (qc**2 / (nc - 1) + qt**2 / (nt - 1))
        t, p = st.ttest_ind_from_stats(mt, np.sqrt(vt), nt, mc, np.sqrt(vc), nc, equal_var=False)
    t, p = np.asarray(t, dtype=float), np.asarray(p, dtype=float)
    half = st.t.ppf(1.0 - alpha / 2.0, df) * se
    return diff, se, df, t, p, diff - half, diff + half


def relative_interval(
    mean_c: float, se_c: float, mean_t: float, se_t: float, alpha: float = 0.05
) -> tuple[float, float, float]:
    """Relative lift ``mean_t / mean_c - 1`` and its delta-method interval (independent arms).

    Returns:
        ``(lift, low, high)``; all nan when the control mean is 0.
    """
    if mean_c == 0:
        return float("nan"), float("nan"), float("nan")
    lift = mean_t / mean_c - 1.0
    se = np.sqrt(se_t**2 / mean_c**2 + mean_t**2 * se_c**2 / mean_c**4)
    z = st.norm.ppf(1.0 - alpha / 2.0)
    return float(lift), float(lift - z * se), float(lift + z * se)


def welch_test(control: ArrayLike, treatment: ArrayLike, alpha: float = 0.05, *, method: str = "welch") -> Effect:
    """Welch's t-test of the means of two samples, with absolute and relative intervals.

    Equal to ``scipy.stats.ttest_ind(treatment, control, equal_var=False)``.
    """
    c, t = np.asarray(control, dtype=float), np.asarray(treatment, dtype=float)
    mc, vc, mt, vt = c.mean(), c.var(ddof=1), t.mean(), t.var(ddof=1)
    diff, se, df, stat, p, lo, hi = welch_from_moments(mc, vc, c.size, mt, vt, t.size, alpha)
    rel, rlo, rhi = relative_interval(mc, np.sqrt(vc / c.size), mt, np.sqrt(vt / t.size), alpha)
    return Effect(
        method, c.size, t.size, float(mc), float(mt), float(diff), float(se), float(lo),
        float(hi), rel, rlo, rhi, float(stat), float(p), float(df),
    )  # fmt: skip


def proportions_from_counts(
    x_c: ArrayLike, n_c: ArrayLike, x_t: ArrayLike, n_t: ArrayLike, alpha: float = 0.05
) -> tuple[Floats, Floats, Floats, Floats, Floats, Floats]:
    """Two-sample test of proportions: pooled z-test, unpooled (Wald) interval.

    The z statistic equals ``statsmodels.stats.proportion.proportions_ztest`` (pooled
    variance under the null); the interval equals ``confint_proportions_2indep(method="wald")``.

    Returns:
        ``(difference, se_unpooled, z, p_value, ci_low, ci_high)`` as arrays.
    """
    xc, nc, xt, nt = (np.asarray(a, dtype=float) for a in (x_c, n_c, x_t, n_t))
    pc, pt = xc / nc, xt / nt
    pooled = (xc + xt) / (nc + nt)
    diff = pt - pc
    with np.errstate(divide="ignore", invalid="ignore"):
        z = diff / np.sqrt(pooled * (1 - pooled) * (1 / nc + 1 / nt))
    p = 2.0 * st.norm.sf(np.abs(z))
    se = np.sqrt(pc * (1 - pc) / nc + pt * (1 - pt) / nt)
    half = st.norm.ppf(1.0 - alpha / 2.0) * se
    return diff, se, z, p, diff - half, diff + half


def proportions_test(x_c: int, n_c: int, x_t: int, n_t: int, alpha: float = 0.05) -> Effect:
    """Difference of two proportions (successes ``x`` out of ``n``) with its intervals."""
    diff, se, z, p, lo, hi = proportions_from_counts(x_c, n_c, x_t, n_t, alpha)
    pc, pt = x_c / n_c, x_t / n_t
    rel, rlo, rhi = relative_interval(pc, np.sqrt(pc * (1 - pc) / n_c), pt, np.sqrt(pt * (1 - pt) / n_t), alpha)
    return Effect(
        "proportions", n_c, n_t, pc, pt, float(diff), float(se), float(lo), float(hi),
        rel, rlo, rhi, float(z), float(p), None,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Cuped:
    """A CUPED adjustment: ``y - theta * (x - mean(x))``."""

    adjusted: Floats
    theta: float
    variance_reduction: float
    """1 - var(adjusted) / var(y), pooled over the arms (0 when x carries no information)."""


def cuped(y: ArrayLike, x: ArrayLike) -> Cuped:
    """Adjust ``y`` with its pre-period covariate ``x`` (Deng et al., 2013).

    ``theta`` is estimated on both arms pooled; ``x`` is measured before exposure so it is
    independent of the assignment and the adjusted difference stays unbiased.
    """
    yy, xx = np.asarray(y, dtype=float), np.asarray(x, dtype=float)
    var_x = xx.var(ddof=1) if xx.size > 1 else 0.0
    if not var_x > 0:
        return Cuped(yy.copy(), 0.0, 0.0)
    theta = float(np.cov(xx, yy, ddof=1)[0, 1] / var_x)
    adjusted = yy - theta * (xx - xx.mean())
    var_y = yy.var(ddof=1)
    reduction = float(1.0 - adjusted.var(ddof=1) / var_y) if var_y > 0 else 0.0
    return Cuped(adjusted, theta, reduction)


def winsorize(values: ArrayLike, upper_quantile: float, lower_quantile: float | None = None) -> tuple[Floats, float]:
    """Cap values at a quantile of the values themselves (pool the arms before calling).

    Returns:
        ``(capped values, upper cap)``.
    """
    v = np.asarray(values, dtype=float)
    cap = float(np.quantile(v, upper_quantile)) if v.size else float("nan")
    low = float(np.quantile(v, lower_quantile)) if lower_quantile is not None and v.size else None
    return np.clip(v, low, cap), cap


def stratified_effect(y: ArrayLike, treated: ArrayLike, strata: ArrayLike, alpha: float = 0.05) -> Effect:
    """Post-stratified difference of means: strata weighted by their share of all units.

    Strata lacking two units in either arm are left out (their units too).
    """
    yy = np.asarray(y, dtype=float)
    tt = np.asarray(treated, dtype=bool)
    ss = np.asarray(strata)
    rows = []
    for s in np.unique(ss):
        m = ss == s
        c, t = yy[m & ~tt], yy[m & tt]
        if c.size >= 2 and t.size >= 2:
            rows.append((c.size + t.size, c.mean(), c.var(ddof=1) / c.size,
                         t.mean(), t.var(ddof=1) / t.size, c.size, t.size))  # fmt: skip
    if not rows:
        raise ValueError("no stratum has two units in each arm")
    a = np.array(rows, dtype=float)
    w = a[:, 0] / a[:, 0].sum()
    mc, mt = float(w @ a[:, 1]), float(w @ a[:, 3])
    se_c, se_t = float(np.sqrt(w**2 @ a[:, 2])), float(np.sqrt(w**2 @ a[:, 4]))
    diff, se = mt - mc, float(np.sqrt(w**2 @ (a[:, 2] + a[:, 4])))
    z = diff / se if se > 0 else float("nan")
    half = st.norm.ppf(1 - alpha / 2) * se
    rel, rlo, rhi = relative_interval(mc, se_c, mt, se_t, alpha)
    return Effect(
        "stratified", int(a[:, 5].sum()), int(a[:, 6].sum()), mc, mt, diff, se, diff - half,
        diff + half, rel, rlo, rhi, z, float(2 * st.norm.sf(abs(z))), None,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class SampleRatio:
    """The sample-ratio-mismatch check: observed variant counts against the configured weights."""

    counts: dict[str, int]
    expected_shares: dict[str, float]
    chi2: float
    p_value: float
    mismatch: bool
    """True when ``p_value`` is below the threshold: the assignment or logging is broken."""


def sample_ratio_check(
    counts: Mapping[str, int], weights: Mapping[str, float], threshold: float = 0.001
) -> SampleRatio:
    """Chi-square goodness of fit of the variant counts against the variant weights."""
    names = list(weights)
    observed = np.array([counts.get(n, 0) for n in names], dtype=float)
    shares = np.array([weights[n] for n in names], dtype=float)
    shares = shares / shares.sum()
    total = observed.sum()
    if total == 0:
        return SampleRatio({n: 0 for n in names}, dict(zip(names, shares.tolist(), strict=True)),
                           0.0, 1.0, False)  # fmt: skip
    chi2, p = st.chisquare(observed, shares * total)
    return SampleRatio(
        {n: int(c) for n, c in zip(names, observed, strict=True)},
        dict(zip(names, shares.tolist(), strict=True)),
        float(chi2),
        float(p),
        bool(p < threshold),
    )


def _z(alpha: float, power: float) -> tuple[float, float]:
    return float(st.norm.ppf(1 - alpha / 2)), float(st.norm.ppf(power))


def sample_size(mde: float, sd: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Units per arm for a two-sided test of a difference ``mde`` in means of spread ``sd``.

    Normal approximation, equal arms: ``n = 2 (z_{1-a/2} + z_power)^2 sd^2 / mde^2``.
    """
    if not mde > 0 or not sd > 0:
        raise ValueError("mde and sd must be positive")
    za, zb = _z(alpha, power)
    return int(np.ceil(2 * (za + zb) ** 2 * sd**2 / mde**2))


def power_at(n: ArrayLike, mde: float, sd: float, alpha: float = 0.05) -> Floats:
    """Power of the two-sided test with ``n`` units per arm (both rejection tails counted)."""
    za = st.norm.ppf(1 - alpha / 2)
    shift = mde / (sd * np.sqrt(2.0 / np.asarray(n, dtype=float)))
    return st.norm.sf(za - shift) + st.norm.cdf(-za - shift)


def minimum_detectable_effect(n: int, sd: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest difference detected with ``power`` by ``n`` units per arm."""
    za, zb = _z(alpha, power)
    return float((za + zb) * sd * np.sqrt(2.0 / n))


def sample_size_proportions(baseline: float, relative_mde: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Units per arm to detect ``baseline -> baseline * (1 + relative_mde)`` (unpooled normal)."""
    p1, p2 = baseline, baseline * (1 + relative_mde)
    if not (0 < p1 < 1 and 0 < p2 < 1) or relative_mde == 0:
        raise ValueError("proportions must lie in (0, 1) and the MDE must not be 0")
    za, zb = _z(alpha, power)
    return int(np.ceil((za + zb) ** 2 * (p1 * (1 - p1) + p2 * (1 - p2)) / (p2 - p1) ** 2))
