"""The retrain trigger's webhook over real HTTP on 127.0.0.1: malformed bodies, a flapping alert,
single-flight under concurrent notifications, retries with backoff, the audit log."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from flywheel.monitoring.trigger import TriggerRules, read_audit
from monitoring.trigger_service import RetrainTrigger, webhook_server

pytestmark = pytest.mark.integration
RULES = TriggerRules(alerts=("FlywheelFeatureDrift",), debounce_seconds=0, cooldown_seconds=3600, max_runs_per_day=3)


class Clock:
    """A settable clock."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def serving(trigger: RetrainTrigger) -> Iterator[str]:
    server = webhook_server(trigger, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def post(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def note(status: str = "firing", name: str = "FlywheelFeatureDrift") -> bytes:
    alert = {"status": status, "labels": {"alertname": name, "retrain": "true"}, "annotations": {}, "startsAt": ""}
    return json.dumps({"version": "4", "status": status, "receiver": "retrain-trigger", "alerts": [alert]}).encode()


def test_a_malformed_body_gets_400_and_an_audit_line(tmp_path: Path) -> None:
    runs: list[str] = []
    trigger = RetrainTrigger(rules=RULES, audit_path=tmp_path / "audit.jsonl", runner=lambda r: runs.append(r) or {})
    with serving(trigger) as url:
        code, answer = post(url, b'{"status": "firing"}')
    assert code == 400
    assert "alerts" in answer["error"]
    (record,) = read_audit(tmp_path / "audit.jsonl")
    assert (record.action, record.guard) == ("reject", "malformed")
    assert runs == []


def test_a_flapping_alert_starts_one_retraining_per_cooldown(tmp_path: Path) -> None:
    clock, runs = Clock(), []
    trigger = RetrainTrigger(
        rules=RULES,
        audit_path=tmp_path / "audit.jsonl",
        runner=lambda run_id: runs.append(run_id) or {"status": "registered"},
        clock=clock,
    )
    with serving(trigger) as url:
        for _ in range(10):  # fires and resolves every minute for 10 minutes
            assert post(url, note("firing"))[0] == 200
            trigger.wait()
            clock.now += 30
            assert post(url, note("resolved"))[0] == 200
            clock.now += 30
        clock.now += 3600  # after the cooldown it may start again
        code, answer = post(url, note("firing"))
        trigger.wait()
    assert len(runs) == 2
    assert answer["action"] == "start"
    guards = [r.guard for r in read_audit(tmp_path / "audit.jsonl") if r.action == "skip"]
    assert guards.count("cooldown") == 9
    finished = [r for r in read_audit(tmp_path / "audit.jsonl") if r.action == "finish"]
    assert [r.guard for r in finished] == ["registered", "registered"]


def test_concurrent_notifications_start_a_single_flight(tmp_path: Path) -> None:
    release = threading.Event()
    runs: list[str] = []

    def slow_runner(run_id: str) -> dict[str, Any]:
        runs.append(run_id)
        release.wait(30)
        return {"status": "stopped", "reason": "promotion gate: the candidate lost"}

    rules = TriggerRules(alerts=RULES.alerts, debounce_seconds=0, cooldown_seconds=0, max_runs_per_day=10)
    trigger = RetrainTrigger(rules=rules, audit_path=tmp_path / "audit.jsonl", runner=slow_runner)
    with serving(trigger) as url:
        answers: list[dict[str, Any]] = []
        threads = [threading.Thread(target=lambda: answers.append(post(url, note())[1])) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        release.set()
        trigger.wait()
    assert sorted(a["action"] for a in answers) == ["skip"] * 5 + ["start"]
    assert {a["guard"] for a in answers if a["action"] == "skip"} == {"single_flight"}
    assert len(runs) == 1


def test_an_unreachable_runner_is_retried_with_backoff_and_audited(tmp_path: Path) -> None:
    attempts: list[str] = []

    def flaky(run_id: str) -> dict[str, Any]:
        attempts.append(run_id)
        if len(attempts) < 3:
            raise ConnectionError("ml-pipeline.kubeflow:8888 refused the connection")
        return {"status": "submitted", "kfp_run_id": "abc"}

    trigger = RetrainTrigger(
        rules=RULES, audit_path=tmp_path / "audit.jsonl", runner=flaky, retry_attempts=4, retry_backoff_seconds=0.01
    )
    status, answer = trigger.handle(note())
    trigger.wait()
    assert (status, answer["action"]) == (200, "start")
    records = read_audit(tmp_path / "audit.jsonl")
    assert [r.action for r in records] == ["start", "retry", "retry", "finish"]
    assert "refused" in records[1].reason
    assert records[-1].outcome == {"status": "submitted", "kfp_run_id": "abc"}
    assert len(set(attempts)) == 1 and len(attempts) == 3


def test_a_runner_that_never_answers_ends_the_run_as_failed(tmp_path: Path) -> None:
    def down(run_id: str) -> dict[str, Any]:
        raise ConnectionError("no route to host")

    trigger = RetrainTrigger(
        rules=RULES, audit_path=tmp_path / "audit.jsonl", runner=down, retry_attempts=2, retry_backoff_seconds=0.01
    )
    trigger.handle(note())
    trigger.wait()
    last = read_audit(tmp_path / "audit.jsonl")[-1]
    assert (last.action, last.guard) == ("finish", "failed")
    assert "no route to host" in last.reason
