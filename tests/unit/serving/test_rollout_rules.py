"""The rollout's pure rules: reading predictions, attribution, units, sample ratio, guardrails, decisions."""

from __future__ import annotations

import math
from dataclasses import replace

import orjson
import pandas as pd
import pytest

from flywheel.config.rollout import RolloutConfig
from flywheel.experiments.stats import sample_ratio_check
from flywheel.serving.attribution import attribute, prediction_frame, unit_frame
from flywheel.serving.rollout import (
    Evidence,
    MetricTest,
    RolloutRecord,
    VariantEvidence,
    decide,
    evidence_record,
    gather_evidence,
    guardrail_breaches,
    stage_sample_ratio,
)

CONFIG = RolloutConfig(schedule=(0.1, 0.5), min_impressions_per_stage=1000, horizon_impressions=10_000)


def prediction(request_id: str, ts: int, user: str, variant: str, items: list[str], **extra: object) -> dict:
    """A prediction record as the contract's JSON object."""
    return {
        "request_id": request_id,
        "timestamp_ms": ts,
        "user_id": user,
        "model_name": "m",
        "model_version": "1" if variant == "champion" else "2",
        "variant": variant,
        "rollout_id": "r",
        "features": {},
        "items": items,
        "scores": [1.0] * len(items),
        "latency_ms": 3.0,
        "error": None,
        **extra,
    }


def frame_of(records: list[dict]) -> pd.DataFrame:
    return prediction_frame([orjson.dumps(r) for r in records])


def event(kind: str, ts: int, user: str, item: str, session: str, watch: float | None = None) -> dict:
    return {
        "user_id": user,
        "session_id": session,
        "event_type": kind,
        "timestamp_ms": ts,
        "watch_seconds": watch,
        "experiment_id": "r",
        "variant": None,
        "device_type": "tv",
        "content_id": item,
    }


def test_prediction_frame_reads_contract_records_and_skips_broken_ones() -> None:
    good = prediction("a", 1000, "u1", "canary", ["c1", "c2"])
    frame = prediction_frame(
        [
            orjson.dumps(good),
            b"{not json",
            orjson.dumps({"user_id": "u2", "variant": "champion"}),  # not a whole record
            orjson.dumps([1, 2]),
            orjson.dumps({**good, "request_id": "b", "error": "timeout", "items": []}),
        ]
    )
    assert frame["request_id"].tolist() == ["a", "b"]
    assert frame.loc[0, "items"] == ["c1", "c2"]
    assert frame.loc[1, "items"] == []
    assert frame["latency_ms"].tolist() == [3.0, 3.0]
    assert frame["error"].tolist() == [None, "timeout"]


def test_feedback_goes_to_the_request_that_served_it() -> None:
    preds = frame_of(
        [
            prediction("p1", 1_000, "u1", "champion", ["c1", "c2"]),
            prediction("p2", 60_000, "u1", "canary", ["c1"]),  # the ramp moved u1; c1 served again
            prediction("p3", 1_000, "u2", "champion", ["c9"]),
        ]
    )
    events = pd.DataFrame(
        [
            event("impression", 1_050, "u1", "c1", "s1"),
            event("impression", 1_100, "u1", "c2", "s1"),
            event("click", 2_000, "u1", "c1", "s1"),
            event("impression", 60_050, "u1", "c1", "s2"),
            # the playback of the first session ends after the second request: still p1's
            event("playback.stopped", 90_000, "u1", "c1", "s1", watch=88.0),
            event("click", 3_000, "u1", "c7", "s1"),  # never served: not attributed
            event("impression", 1_000 + 3_600_000, "u2", "c9", "s3"),  # outside a 1 h window
        ]
    )
    out = attribute(preds, events, window_ms=3_600_000)
    got = sorted(zip(out["event_type"], out["request_id"], out["variant"], strict=True))
    assert got == [
        ("click", "p1", "champion"),
        ("impression", "p1", "champion"),
        ("impression", "p1", "champion"),
        ("impression", "p2", "canary"),
        ("playback.stopped", "p1", "champion"),
    ]


def test_a_click_without_an_impression_falls_back_to_the_latest_prediction() -> None:
    preds = frame_of([prediction("p1", 1_000, "u1", "canary", ["c1"])])
    events = pd.DataFrame([event("click", 5_000, "u1", "c1", "s1")])
    out = attribute(preds, events, window_ms=60_000)
    assert out["request_id"].tolist() == ["p1"]


def test_failed_requests_serve_nothing_and_units_count_every_served_user() -> None:
    preds = frame_of(
        [
            prediction("p1", 1_000, "u1", "champion", ["c1", "c2"]),
            prediction("p2", 2_000, "u1", "canary", ["c3"]),
            prediction("p3", 3_000, "u2", "canary", ["c4"]),
            prediction("p4", 4_000, "u3", "canary", [], error="boom"),
        ]
    )
    events = pd.DataFrame(
        [
            event("impression", 1_010, "u1", "c1", "s1"),
            event("impression", 1_020, "u1", "c2", "s1"),
            event("click", 1_500, "u1", "c2", "s1"),
            event("playback.completed", 9_000, "u1", "c2", "s1", watch=3600.0),
            event("impression", 2_010, "u1", "c3", "s2"),
        ]
    )
    units = unit_frame(preds, attribute(preds, events, 60_000))
    assert units.index.tolist() == ["u1|canary", "u1|champion", "u2|canary"]  # u3 was never served
    assert units["impressions"].tolist() == [1.0, 2.0, 0.0]
    assert units["clicks"].tolist() == [0.0, 1.0, 0.0]
    assert units["watch_hours"].tolist() == [0.0, 1.0, 0.0]
    assert units.loc["u1|canary", "exposure_ms"] == 2_000


def test_the_ratio_check_counts_the_stage_users_once() -> None:
    preds = frame_of(
        [prediction(f"p{i}", 500, f"old{i}", "canary", []) for i in range(50)]  # before the stage
        + [prediction(f"q{i}", 1_000 + i, f"u{i % 40}", "champion" if i % 40 < 30 else "canary", []) for i in range(80)]
    )
    srm = stage_sample_ratio(preds, since_ms=1_000, fraction=0.25, threshold=0.001)
    assert srm.counts == {"champion": 30, "canary": 10}
    assert srm.p_value == pytest.approx(1.0)


def variant(name: str, *, requests: int = 1000, errors: int = 0, p99: float = 10.0) -> VariantEvidence:
    return VariantEvidence(name, requests, errors, errors / requests, p99, 100, 5000, 500, 0.1, 30.0)


def test_guardrails_need_enough_requests_a_margin_and_an_absolute_excess() -> None:
    base = variant("champion", errors=10)  # 1 %
    assert guardrail_breaches(base, variant("canary", errors=20), CONFIG) == []  # +1 % is the limit
    breach = guardrail_breaches(base, variant("canary", errors=21), CONFIG)
    assert len(breach) == 1 and "error rate 2.10%" in breach[0]
    assert guardrail_breaches(base, variant("canary", requests=199, errors=100), CONFIG) == []
    assert guardrail_breaches(variant("champion", p99=2.0), variant("canary", p99=6.5), CONFIG) == []  # 3x, 4.5 ms
    slow = guardrail_breaches(variant("champion", p99=10.0), variant("canary", p99=15.1), CONFIG)
    assert len(slow) == 1 and "p99 latency 15.1 ms" in slow[0]
    assert guardrail_breaches(variant("champion", p99=10.0), variant("canary", p99=math.nan), CONFIG) == []


def metric(name: str, role: str, direction: str) -> MetricTest:
    if direction == "untested":
        return MetricTest(name, role, "insufficient", "not enough units")  # type: ignore[arg-type]
    significant = direction != "none"
    return MetricTest(name, role, "ok", "+0% [-1%, +1%]", 0.1, 0.1, 0.05, 0.001, 0.002, significant, direction)  # type: ignore[arg-type]


def evidence(
    *,
    primary: str = "none",
    secondary: str = "none",
    stage_impressions: int = 1000,
    impressions: int = 1000,
    canary: VariantEvidence | None = None,
    srm_counts: dict[str, int] | None = None,
) -> Evidence:
    srm = sample_ratio_check(srm_counts or {"champion": 90, "canary": 10}, {"champion": 0.9, "canary": 0.1})
    return Evidence(
        rollout_id="r",
        stage=0,
        fraction=0.1,
        variants={"champion": variant("champion"), "canary": canary or variant("canary")},
        tests=(metric("ctr", "primary", primary), metric("watch_hours_per_impression", "secondary", secondary)),
        srm=srm,
        stage_canary_impressions=stage_impressions,
        canary_impressions=impressions,
    )


def state(stage: int = 0, status: str = "running") -> RolloutRecord:
    return RolloutRecord("r", status, stage, CONFIG.schedule[stage], 0, "1", "2")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ev", "st", "expected"),
    [
        (evidence(), state(status="promoted"), ("hold", 0, 0.1)),
        (evidence(canary=variant("canary", errors=50), primary="better"), state(1), ("rollback", 1, 0.0)),
        (evidence(srm_counts={"champion": 900, "canary": 200}), state(), ("hold", 0, 0.1)),
        (evidence(secondary="worse", primary="better"), state(1), ("rollback", 1, 0.0)),
        (evidence(primary="worse", stage_impressions=0), state(), ("rollback", 0, 0.0)),
        (evidence(primary="better"), state(1), ("promote", 1, 1.0)),
        (evidence(primary="better"), state(0), ("raise", 1, 0.5)),  # better, but only the last stage promotes
        (evidence(primary="better", stage_impressions=999), state(1), ("hold", 1, 0.5)),
        (evidence(stage_impressions=999), state(0), ("hold", 0, 0.1)),
        (evidence(stage_impressions=1000), state(0), ("raise", 1, 0.5)),
        (evidence(stage_impressions=5000), state(1), ("hold", 1, 0.5)),
        (evidence(impressions=10_000), state(0), ("hold", 0, 0.1)),  # horizon: stop moving
        (evidence(secondary="better"), state(1), ("hold", 1, 0.5)),  # only the primary metric promotes
        (evidence(primary="untested"), state(0), ("hold", 0, 0.1)),  # never raise before a test could run
    ],
)
def test_decisions(ev: Evidence, st: RolloutRecord, expected: tuple[str, int, float]) -> None:
    got = decide(ev, st, CONFIG)
    assert (got.decision, got.stage, got.fraction) == expected


def test_decisions_say_why() -> None:
    assert (
        "sample ratio mismatch" in decide(evidence(srm_counts={"champion": 900, "canary": 200}), state(), CONFIG).reason
    )
    assert "horizon reached" in decide(evidence(impressions=10_000), state(), CONFIG).reason
    assert "collecting: 999 of 1000" in decide(evidence(stage_impressions=999), state(), CONFIG).reason
    assert (
        "guardrail breached: error rate"
        in decide(evidence(canary=variant("canary", errors=50)), state(), CONFIG).reason
    )


def test_a_hold_at_the_last_stage_gives_the_always_valid_evidence_that_decided() -> None:
    # a fixed-sample interval that leaves out 0 while the always-valid test is not yet convinced
    ctr = MetricTest("ctr", "primary", "ok", "-9.52% [-17.50%, -1.54%]", 0.1, 0.0905, -0.0952, 0.08, 0.16)
    ev = replace(
        evidence(stage_impressions=5000), tests=(ctr, metric("watch_hours_per_impression", "secondary", "none"))
    )
    got = decide(ev, state(1), CONFIG)
    assert got.decision == "hold"
    assert got.reason == "last stage: not yet significantly different at 0.05: ctr -9.52% (always-valid p=0.16)"


def test_evidence_is_json_ready() -> None:
    ev = evidence(canary=variant("canary", p99=math.nan))
    record = evidence_record(ev)
    text = orjson.dumps(record)
    assert record["variants"]["canary"]["p99_latency_ms"] is None
    assert orjson.loads(text)["tests"][0]["metric"] == "ctr"


def test_the_schedule_must_increase_within_zero_and_one() -> None:
    with pytest.raises(ValueError, match="must increase"):
        RolloutConfig(schedule=(0.5, 0.25))
    with pytest.raises(ValueError, match="must lie in"):
        RolloutConfig(schedule=(0.5, 1.0))
    with pytest.raises(ValueError, match="unknown metric"):
        RolloutConfig(primary_metric="revenue")


def test_evidence_leaves_out_shadow_answers_and_other_rollouts() -> None:
    preds = frame_of(
        [
            prediction("p1", 1_000, "u1", "champion", ["c1"]),
            prediction("p1", 1_000, "u1", "shadow", ["c1", "c2"]),  # mirrored, never shown
            prediction("p2", 5_000, "u2", "canary", ["c3"]),
            {**prediction("p3", 5_000, "u3", "canary", ["c4"]), "rollout_id": "older"},
        ]
    )
    events = pd.DataFrame(
        [
            event("impression", 1_010, "u1", "c1", "s1"),
            event("impression", 1_020, "u1", "c2", "s1"),  # only the shadow "served" c2
            event("impression", 5_010, "u2", "c3", "s2"),
            event("impression", 5_010, "u3", "c4", "s3"),
        ]
    )
    st = RolloutRecord("r", "running", 0, 0.1, 4_000, "1", "2")
    ev = gather_evidence(preds, events, st, CONFIG.model_copy(update={"srm_grace_seconds": 0.0}))
    assert ev.variants["champion"].requests == 1 and ev.variants["champion"].impressions == 1
    assert ev.variants["canary"].requests == 1 and ev.variants["canary"].impressions == 1
    assert (ev.canary_impressions, ev.stage_canary_impressions) == (1, 1)
    assert ev.srm.counts == {"champion": 0, "canary": 1}  # only users seen since the stage began
