"""An always-valid sequential test: the mixture sequential probability ratio test (mSPRT).

Johari, Pekelis and Walsh, "Always valid inference" (2017/2022). For a difference of means
``d`` estimated with variance ``V`` and a normal mixture ``N(0, tau^2)`` over the true effect,
the likelihood ratio against "no effect" is::

    Lambda = sqrt(V / (V + tau^2)) * exp(d^2 tau^2 / (2 V (V + tau^2)))

Under the null, ``Lambda`` is a nonnegative martingale, so by Ville's inequality
``P(sup_n Lambda_n >= 1/alpha) <= alpha``: an analyst may look after every unit and stop at
any time. The always-valid p-value is ``min(1, min over looks of 1 / Lambda)``; the matching
confidence sequence is ``d +/- sqrt(V (V + tau^2) / tau^2 * (2 log(1/alpha) + log((V + tau^2)/V)))``.
``V`` is the plug-in Welch variance and ``tau`` is given in standard deviations of the metric
(``tau^2 = tau_sd^2 * (s_c^2 + s_t^2) / 2``), which makes the test scale-free.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class SequentialResult:
    """The mSPRT after the last look, and its path over the looks."""

    looks: int
    p_value: float
    """Always-valid p-value: the smallest ``1 / Lambda`` over the looks (capped at 1)."""
    ci_low: float
    """Confidence sequence for the difference (treatment - control) at the last look."""
    ci_high: float
    rejected: bool
    """True when ``p_value <= alpha``: stopping here keeps the error rate at alpha."""
    look_units: tuple[int, ...]
    """Units (both arms) at each look."""
    p_path: tuple[float, ...]
    """Always-valid p-value after each look."""


def log_likelihood_ratio(diff: npt.ArrayLike, var: npt.ArrayLike, tau2: npt.ArrayLike) -> Floats:
    """``log Lambda`` of the normal-mixture SPRT (vectorized)."""
    d, v, t = (np.asarray(a, dtype=float) for a in (diff, var, tau2))
    return 0.5 * np.log(v / (v + t)) + d**2 * t / (2.0 * v * (v + t))


def half_width(var: npt.ArrayLike, tau2: npt.ArrayLike, alpha: float) -> Floats:
    """Half-width of the always-valid confidence sequence (vectorized)."""
    v, t = np.asarray(var, dtype=float), np.asarray(tau2, dtype=float)
    return np.sqrt(v * (v + t) / t * (2.0 * np.log(1.0 / alpha) + np.log((v + t) / v)))


def msprt_from_sums(
    sum_c: npt.ArrayLike,
    sumsq_c: npt.ArrayLike,
    n_c: npt.ArrayLike,
    sum_t: npt.ArrayLike,
    sumsq_t: npt.ArrayLike,
    n_t: npt.ArrayLike,
    tau_sd: float,
    alpha: float = 0.05,
) -> tuple[Floats, Floats, Floats]:
    """The mSPRT at a set of looks from running sums, vectorized over any leading axes.

    The last axis indexes the looks (in time order).

    Returns:
        ``(always-valid p-value path, ci_low, ci_high)``, each shaped like the inputs.
    """
    sc, qc, nc = (np.asarray(a, dtype=float) for a in (sum_c, sumsq_c, n_c))
    stt, qt, nt = (np.asarray(a, dtype=float) for a in (sum_t, sumsq_t, n_t))
    mc, mt = sc / nc, stt / nt
    vc = np.maximum(qc - nc * mc**2, 0.0) / (nc - 1)
    vt = np.maximum(qt - nt * mt**2, 0.0) / (nt - 1)
    var = vc / nc + vt / nt
    tau2 = tau_sd**2 * (vc + vt) / 2.0
    diff = mt - mc
    with np.errstate(divide="ignore", invalid="ignore"):
        llr = np.where(var > 0, log_likelihood_ratio(diff, var, tau2), 0.0)
        hw = np.where(var > 0, half_width(var, tau2, alpha), np.inf)
    p = np.minimum(1.0, np.exp(-np.maximum.accumulate(llr, axis=-1)))
    return p, diff - hw, diff + hw


def msprt(
    y: npt.ArrayLike,
    treated: npt.ArrayLike,
    *,
    tau_sd: float = 0.1,
    alpha: float = 0.05,
    looks: int = 50,
    min_units: int = 2,
) -> SequentialResult:
    """Run the mSPRT over units in arrival order, looking ``looks`` times.

    Args:
        y: Per-unit values in arrival (exposure) order.
        treated: True for treatment units, False for control, aligned with ``y``.
        tau_sd: Mixture scale in standard deviations of the metric.
        alpha: Error rate the always-valid guarantee holds at.
        looks: Evenly spaced looks over the arrivals (the last look sees every unit).
        min_units: The first look waits for this many units in each arm.

    Returns:
        The result after the last look with its path.
    """
    yy = np.asarray(y, dtype=float)
    tt = np.asarray(treated, dtype=bool)
    c_seen, t_seen = np.cumsum(~tt), np.cumsum(tt)
    ready = np.flatnonzero((c_seen >= max(min_units, 2)) & (t_seen >= max(min_units, 2)))
    if ready.size == 0:
        raise ValueError(f"the arms never both reach {max(min_units, 2)} units")
    first = int(ready[0])
    idx = np.unique(np.linspace(first, yy.size - 1, num=max(1, looks)).round().astype(int))
    yc, yt = np.where(tt, 0.0, yy), np.where(tt, yy, 0.0)
    p, lo, hi = msprt_from_sums(
        np.cumsum(yc)[idx], np.cumsum(yc**2)[idx], c_seen[idx],
        np.cumsum(yt)[idx], np.cumsum(yt**2)[idx], t_seen[idx],
        tau_sd, alpha,
    )  # fmt: skip
    return SequentialResult(
        looks=int(idx.size),
        p_value=float(p[-1]),
        ci_low=float(lo[-1]),
        ci_high=float(hi[-1]),
        rejected=bool(p[-1] <= alpha),
        look_units=tuple(int(i) + 1 for i in idx),
        p_path=tuple(float(v) for v in p),
    )
