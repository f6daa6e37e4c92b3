"""Retrain trigger guards: every rule, in order, and state rebuilt from the audit log."""

import json

import pytest

from flywheel.monitoring.trigger import (
    AlertmanagerError,
    AuditRecord,
    TriggerRules,
    TriggerState,
    append_audit,
    decide,
    parse_notification,
    read_audit,
    state_from_audit,
)

RULES = TriggerRules(alerts=("FlywheelFeatureDrift",), debounce_seconds=60, cooldown_seconds=3600, max_runs_per_day=2)


def _note(name: str = "FlywheelFeatureDrift", status: str = "firing") -> bytes:
    alert = {"status": status, "labels": {"alertname": name, "severity": "warning"}, "annotations": {}}
    return json.dumps({"version": "4", "status": status, "receiver": "retrain", "alerts": [alert]}).encode()


def test_a_firing_retrain_alert_with_no_history_starts_a_run() -> None:
    decision = decide(parse_notification(_note()), now_s=1000, state=TriggerState(), rules=RULES)
    assert (decision.action, decision.guard, decision.alert) == ("start", "fired", "FlywheelFeatureDrift")


@pytest.mark.parametrize(
    ("note", "state", "guard"),
    [
        (_note("FlywheelServingLatencySLO"), TriggerState(), "not_retrain_alert"),
        (_note(status="resolved"), TriggerState(), "resolved"),
        (_note(), TriggerState(last_notice_s=990), "debounce"),
        (_note(), TriggerState(last_notice_s=900, started_s=(900,), running="r1"), "single_flight"),
        (_note(), TriggerState(last_notice_s=900, started_s=(900,)), "cooldown"),
        (_note(), TriggerState(last_notice_s=-80_000, started_s=(-80_000, -70_000)), "daily_budget"),
    ],
)
def test_each_guard_skips(note: bytes, state: TriggerState, guard: str) -> None:
    decision = decide(parse_notification(note), now_s=1000, state=state, rules=RULES)
    assert (decision.action, decision.guard) == ("skip", guard)


def test_the_budget_counts_only_the_last_24_hours() -> None:
    state = TriggerState(last_notice_s=-90_000, started_s=(-90_000, -70_000))
    assert decide(parse_notification(_note()), now_s=1000, state=state, rules=RULES).action == "start"


@pytest.mark.parametrize(
    ("body", "names"),
    [(b"not json", "not JSON"), (b'{"alerts": []}', "status"), (b'{"status": "firing", "alerts": []}', "empty")],
)
def test_malformed_bodies_are_rejected_with_the_reason(body: bytes, names: str) -> None:
    with pytest.raises(AlertmanagerError, match=names):
        parse_notification(body)


def test_a_flapping_alert_starts_one_run_per_cooldown(tmp_path) -> None:
    audit = tmp_path / "decisions.jsonl"
    starts = 0
    for minute in range(0, 120, 2):  # fires every 2 minutes (resolving in between) for 2 hours
        for status in ("firing", "resolved"):
            now = minute * 60.0 + (0 if status == "firing" else 30)
            state = state_from_audit(read_audit(audit))
            decision = decide(parse_notification(_note(status=status)), now_s=now, state=state, rules=RULES)
            run_id = f"run-{minute}" if decision.action == "start" else None
            append_audit(audit, AuditRecord(now, decision.action, decision.guard, decision.reason, run_id=run_id))
            if decision.action == "start":
                starts += 1
                append_audit(audit, AuditRecord(now + 10, "finish", "outcome", "done", run_id=run_id))
    assert starts == 2  # at 0 min and at 60 min: one per cooldown of an hour
    guards = {r.guard for r in read_audit(audit)}
    assert {"cooldown", "resolved", "fired"} <= guards


def test_state_from_audit_knows_the_run_in_flight_until_it_finishes() -> None:
    records = [
        AuditRecord(10, "start", "fired", "", run_id="a"),
        AuditRecord(20, "skip", "single_flight", "", alert="x"),
    ]
    state = state_from_audit(records)
    assert (state.running, state.started_s, state.last_notice_s) == ("a", (10,), 20)
    assert state_from_audit([*records, AuditRecord(30, "finish", "outcome", "", run_id="a")]).running is None
