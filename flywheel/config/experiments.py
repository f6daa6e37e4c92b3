"""Configuration of the experimentation platform (owned by flywheel.experiments)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from flywheel.config.base import Section
from flywheel.experiments.config import ExperimentRegistry, GuardrailSpec


class ExperimentsConfig(Section):
    """The experimentation platform: test settings, guardrails and the experiment registry."""

    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    """Significance level of the tests (two-sided)."""
    power: float = Field(default=0.8, gt=0, lt=1)
    """Target power of `flywheel experiments plan`."""
    min_units_per_variant: int = Field(default=100, ge=2)
    """Below this many units in a variant the analysis reports "not enough units", no p-value."""
    srm_p_threshold: float = Field(default=0.001, gt=0, lt=1)
    """A chi-square p-value of the variant counts below this flags a sample-ratio mismatch."""
    winsorize_quantile: float | None = Field(default=0.999, gt=0.5, le=1)
    """Mean metrics are capped at this pooled upper quantile before testing (None: off)."""
    sequential_tau: float = Field(default=0.1, gt=0)
    """Mixture scale of the mSPRT, in standard deviations of the metric (expected effect size)."""
    correction: Literal["bh", "bonferroni"] = "bh"
    """Multiple-testing correction across metrics and variants: Benjamini-Hochberg or Bonferroni."""
    guardrails: tuple[GuardrailSpec, ...] = ()
    """Guardrails applied to every experiment (each experiment may add its own)."""
    report_dir: Path = Path(".flywheel/reports/experiments")
    """Folder of the HTML reports and of the pause decisions."""
    registry_file: Path | None = None
    """A YAML file with `holdout`, `layers` and `experiments` (instead of `registry`)."""
    registry: ExperimentRegistry = ExperimentRegistry()
    """Inline layers and experiments."""

    @model_validator(mode="after")
    def _one_registry(self) -> ExperimentsConfig:
        inline = self.registry.experiments or self.registry.layers
        if self.registry_file is not None and inline:
            raise ValueError("give either registry_file or an inline registry, not both")
        return self
