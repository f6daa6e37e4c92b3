"""The loop's in-process alerts follow the drift rules: shares, score drift, target drift."""

from typing import Any

from flywheel.monitoring.alerts import FiringAlert, drifted_shares, firing_alerts


def _result(source: str, status: str, share: float, scores: str | None = None, targets: Any = ()) -> dict[str, Any]:
    return {
        "source": source,
        "features": {"status": status, "share": share},
        "scores": None if scores is None else {"status": scores, "detail": f"scores {scores}"},
        "targets": [{"target": t, "status": s, "detail": f"{t} {s}"} for t, s in targets],
    }


def test_a_share_at_the_threshold_fires_and_below_it_does_not() -> None:
    results = [_result("events", "drift", 0.4), _result("predictions", "ok", 0.29)]
    assert firing_alerts(results, max_drift_share=0.3) == [
        FiringAlert("FlywheelFeatureDrift/events", "FlywheelFeatureDrift", "40% of the events features drifted")
    ]
    assert [a.key for a in firing_alerts([_result("events", "drift", 0.3)], max_drift_share=0.3)] == [
        "FlywheelFeatureDrift/events"
    ]


def test_score_and_target_drift_fire_and_undecided_checks_do_not() -> None:
    results = [
        _result("predictions", "insufficient_data", float("nan"), scores="drift"),
        _result("events", "ok", 0.0, targets=[("ctr", "drift"), ("watch_50_rate", "insufficient_data")]),
    ]
    keys = [a.key for a in firing_alerts(results, max_drift_share=0.3)]
    assert keys == ["FlywheelPredictionDrift", "FlywheelTargetDrift/ctr"]
    assert drifted_shares(results) == {"events": 0.0}


def test_nothing_drifted_fires_nothing() -> None:
    results = [_result("events", "ok", 0.2, targets=[("ctr", "ok")]), _result("predictions", "ok", 0.0, scores="ok")]
    assert firing_alerts(results, max_drift_share=0.3) == []
