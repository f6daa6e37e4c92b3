"""The router's observations become the serving metrics of monitoring/metrics.py."""

from flywheel.serving.recommender import Recommendation
from flywheel.serving.router import Answer, ShadowComparison
from monitoring.metrics import REGISTRY
from serving.observer import PrometheusObserver


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_answers_count_by_variant_and_degradation_by_reason() -> None:
    observer = PrometheusObserver()
    before = _value("flywheel_serving_requests_total", variant="canary", code="200")
    degraded = _value("flywheel_serving_degraded_total", reason="feature_store")
    stage = _value("flywheel_serving_stage_seconds_count", stage="ranking", variant="canary")
    rec = Recommendation(["a"], [1.0], {}, 1, {"ranking": 0.002, "rules": 0.0001}, ["feature_store"])
    observer.answered(Answer("r1", "canary", "4", "r-1", rec, 3.0))
    assert _value("flywheel_serving_requests_total", variant="canary", code="200") == before + 1
    assert _value("flywheel_serving_degraded_total", reason="feature_store") == degraded + 1
    assert _value("flywheel_serving_stage_seconds_count", stage="ranking", variant="canary") == stage + 1


def test_shadow_overlap_and_errors() -> None:
    observer = PrometheusObserver()
    errors = _value("flywheel_serving_shadow_errors_total")
    overlaps = _value("flywheel_serving_shadow_overlap_count")
    observer.shadowed(ShadowComparison(0.5, 0.1), None)
    observer.shadowed(None, "TimeoutError: slow")
    assert _value("flywheel_serving_shadow_overlap_count") == overlaps + 1
    assert _value("flywheel_serving_shadow_errors_total") == errors + 1


def test_rejections_count_as_errors() -> None:
    observer = PrometheusObserver()
    before = _value("flywheel_serving_errors_total", variant="none", kind="bad_request")
    observer.rejected("bad_request", 400)
    assert _value("flywheel_serving_errors_total", variant="none", kind="bad_request") == before + 1
    assert _value("flywheel_serving_requests_total", variant="none", code="400") >= 1
