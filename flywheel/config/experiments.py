"""Configuration of the experimentation platform (owned by flywheel.experiments)."""

from __future__ import annotations

from flywheel.config.base import Section


class ExperimentsConfig(Section):
    """The experimentation platform."""

    alpha: float = 0.05
    """Significance level of the tests."""
