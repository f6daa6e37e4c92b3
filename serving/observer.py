"""Prometheus wiring of the router: what it did, as the metrics of monitoring/metrics.py."""

from __future__ import annotations

from flywheel.serving.router import Answer, Deployment, ShadowComparison
from monitoring import metrics as m


class PrometheusObserver:
    """Counts requests, stage times, degradations and shadow disagreement."""

    def answered(self, answer: Answer) -> None:
        """One answered request: its count, latency, stage times and degradations."""
        variant = answer.variant
        m.SERVING_REQUESTS.labels(variant=variant, code="200").inc()
        m.SERVING_REQUEST_SECONDS.labels(variant=variant).observe(answer.latency_ms / 1000.0)
        for stage, seconds in answer.recommendation.stage_seconds.items():
            m.SERVING_STAGE_SECONDS.labels(stage=stage, variant=variant).observe(seconds)
        for reason in answer.recommendation.degraded:
            m.SERVING_DEGRADED.labels(reason=reason).inc()

    def shadowed(self, comparison: ShadowComparison | None, error: str | None) -> None:
        """One shadow copy: its disagreement with the answer, or an error."""
        if error is not None or comparison is None:
            m.SERVING_SHADOW_ERRORS.inc()
            return
        m.SERVING_SHADOW_OVERLAP.observe(comparison.overlap)
        if comparison.mean_abs_score_delta is not None:
            m.SERVING_SHADOW_SCORE_DELTA.observe(comparison.mean_abs_score_delta)

    def rejected(self, kind: str, code: int) -> None:
        """A request that got no answer (bad_request: 4xx; internal: 5xx)."""
        m.SERVING_REQUESTS.labels(variant="none", code=str(code)).inc()
        m.SERVING_ERRORS.labels(variant="none", kind=kind).inc()

    @staticmethod
    def deployed(deployment: Deployment) -> None:
        """The versions serving now and the canary fraction."""
        m.SERVING_MODEL_INFO.clear()
        for variant, version in deployment.versions().items():
            m.SERVING_MODEL_INFO.labels(variant=variant, version=version).set(1)
        fraction = deployment.rollout.canary_fraction if deployment.canary is not None else 0.0
        m.SERVING_CANARY_FRACTION.set(fraction)
