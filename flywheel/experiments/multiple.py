"""Corrections for testing many metrics, variants and experiments at once."""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

Correction = Literal["bh", "bonferroni"]


def bonferroni(p_values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Bonferroni-adjusted p-values (controls the family-wise error rate)."""
    p = np.asarray(p_values, dtype=float)
    return np.minimum(1.0, p * p.size)


def benjamini_hochberg(p_values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Benjamini-Hochberg adjusted p-values (controls the false discovery rate).

    ``p_adj(i) = min over j >= i of p(j) * m / j`` for the p-values sorted ascending.
    """
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    out = np.empty(m)
    out[order] = adjusted
    return out


def adjust(p_values: npt.ArrayLike, method: Correction) -> npt.NDArray[np.float64]:
    """Adjust a family of p-values with ``method`` (``bh`` or ``bonferroni``)."""
    if method == "bh":
        return benjamini_hochberg(p_values)
    if method == "bonferroni":
        return bonferroni(p_values)
    raise ValueError(f"unknown correction {method!r}")
