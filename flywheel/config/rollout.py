"""Configuration of the canary rollout and its automatic analysis (owned by flywheel.serving.rollout)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from flywheel.config.base import Section


class RolloutConfig(Section):
    """How a challenger is ramped up, judged against the champion, promoted or rolled back."""

    schedule: tuple[float, ...] = (0.05, 0.25, 0.5)
    """Canary fractions of the stages, increasing, each in (0, 1); past the last stage the canary
    can only be promoted (100 %) or rolled back (0 %)."""
    min_impressions_per_stage: int = Field(default=2000, ge=1)
    """Canary impressions a stage must collect (since the stage began) before the fraction rises."""
    attribution_window_minutes: float = Field(default=240.0, gt=0)
    """Feedback (impressions, clicks, playbacks of a served title) counts for the latest prediction
    that served the title to the user within this window before it."""
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    """Error rate of the always-valid (mSPRT) decisions, Bonferroni-split over the metrics."""
    sequential_tau: float = Field(default=0.1, gt=0)
    """Mixture scale of the mSPRT, in standard deviations of the metric (the expected effect size)."""
    primary_metric: str = "ctr"
    """Decision metric from the experiments catalogue: significantly better promotes, worse rolls back."""
    metrics: tuple[str, ...] = ("watch_hours_per_impression",)
    """Further catalogue metrics that roll back when significantly worse (and block a promotion)."""
    min_units_per_variant: int = Field(default=100, ge=2)
    """Units (user x variant) each arm needs before a metric is tested at all."""
    srm_p_threshold: float = Field(default=0.001, gt=0, lt=1)
    """Chi-square p-value of the stage's users per variant below which the rollout holds (broken
    assignment or logging: the effects cannot be trusted)."""
    srm_grace_seconds: float = Field(default=30.0, ge=0)
    """Predictions in the first seconds of a stage are left out of its ratio check (servers pick
    up a new fraction on their next registry poll)."""
    guardrail_min_requests: int = Field(default=200, ge=1)
    """Requests each arm needs before the error-rate and latency guardrails apply."""
    max_error_rate_increase: float = Field(default=0.01, ge=0, le=1)
    """Roll back when the canary's error rate exceeds the champion's by more than this (absolute)."""
    max_p99_ratio: float = Field(default=1.5, ge=1)
    """Roll back when the canary's p99 latency exceeds the champion's times this ..."""
    min_p99_excess_ms: float = Field(default=5.0, ge=0)
    """... and by more than this many milliseconds (sub-millisecond noise never rolls back)."""
    horizon_impressions: int = Field(default=200_000, ge=1)
    """Canary impressions after which an undecided rollout stops moving: it holds at the last
    stage as inconclusive until a person promotes or rolls back."""
    audit_path: Path | None = None
    """Append-only JSONL of every decision with its evidence (default: `<home>/rollout/decisions.jsonl`)."""

    @field_validator("schedule")
    @classmethod
    def _increasing(cls, schedule: tuple[float, ...]) -> tuple[float, ...]:
        if not schedule:
            raise ValueError("the schedule needs at least one stage")
        if any(not 0 < f < 1 for f in schedule):
            raise ValueError(f"every stage fraction must lie in (0, 1), got {list(schedule)}")
        if any(b <= a for a, b in zip(schedule, schedule[1:], strict=False)):
            raise ValueError(f"stage fractions must increase, got {list(schedule)}")
        return schedule

    @field_validator("primary_metric", "metrics")
    @classmethod
    def _known(cls, value: str | tuple[str, ...]) -> str | tuple[str, ...]:
        from flywheel.experiments.catalogue import metric_names, resolve_metric

        for name in [value] if isinstance(value, str) else value:
            try:
                definition = resolve_metric(name)
            except KeyError:
                raise ValueError(f"unknown metric {name!r} (known: {', '.join(metric_names())})") from None
            if definition.kind == "proportion":
                raise ValueError(f"{name!r} is a day-N proportion; a canary is judged on per-unit means and ratios")
        return value
