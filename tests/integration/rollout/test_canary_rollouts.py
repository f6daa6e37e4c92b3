"""Simulated users drive canary rollouts end to end: worse rolled back, better promoted, A/A untouched.

The "models" are policies of known quality (rankings by a noisy view of the simulator's true
affinity, or by its negation) behind the same in-process router; the analysis only reads the
prediction log, the feedback events and the MLflow registry (SQLite), and moves the aliases.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flywheel.serving.rollout_registry import audit_path, read_audit, read_state
from tests.integration.rollout.scenario import MODEL, run_rollout

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _mlflow(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import mlflow

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    yield
    mlflow.set_tracking_uri(None)


def test_a_worse_model_is_rolled_back(tmp_path: Path, mlflow_uri: Callable[[], str]) -> None:
    out = run_rollout(tmp_path, mlflow_uri(), champion_noise=1.0, canary_noise=1.0, canary_sign=-1.0)
    last = out.steps[-1]
    assert last.decision.decision == "rollback"
    assert "ctr" in last.decision.reason
    assert out.aliases == {"champion": "1"}  # the champion never moved; the challenger alias is gone
    assert read_state(MODEL).status == "rolled_back"
    assert read_state(MODEL).fraction == 0.0
    assert all(s.decision.decision != "promote" for s in out.steps)
    audit = list(read_audit(audit_path(out.config), "rollout-test"))
    assert [r["decision"] for r in audit][0] == "start"
    assert audit[-1]["decision"] == "rollback"
    assert audit[-1]["evidence"]["variants"]["canary"]["ctr"] < audit[-1]["evidence"]["variants"]["champion"]["ctr"]


def test_a_better_model_is_promoted(tmp_path: Path, mlflow_uri: Callable[[], str]) -> None:
    out = run_rollout(tmp_path, mlflow_uri(), champion_noise=2.0, canary_noise=0.5)
    decisions = [s.decision.decision for s in out.steps]
    assert decisions[-1] == "promote"
    assert decisions.count("raise") == 2  # through every stage of the schedule first
    assert "rollback" not in decisions
    assert out.aliases == {"champion": "2", "previous_champion": "1"}
    assert read_state(MODEL).status == "promoted"
    stages = [r["after"]["fraction"] for r in read_audit(audit_path(out.config)) if r["decision"] == "raise"]
    assert stages == [0.3, 0.5]


def test_an_aa_rollout_neither_promotes_nor_rolls_back_within_its_horizon(
    tmp_path: Path, mlflow_uri: Callable[[], str]
) -> None:
    out = run_rollout(tmp_path, mlflow_uri(), champion_noise=1.0, canary_noise=1.0, requests_per_step=4000)
    assert [s.decision.decision for s in out.steps] == ["raise", "raise", "hold"]  # through the stages, then holds
    last = out.steps[-1]
    assert last.evidence is not None
    assert last.evidence.canary_impressions >= out.config.rollout.horizon_impressions
    assert "horizon reached" in last.decision.reason
    assert out.aliases == {"champion": "1", "challenger": "2"}
    assert read_state(MODEL).status == "running"


def test_a_canary_that_fails_requests_is_rolled_back_by_its_guardrail(
    tmp_path: Path, mlflow_uri: Callable[[], str]
) -> None:
    out = run_rollout(
        tmp_path,
        mlflow_uri(),
        champion_noise=1.0,
        canary_noise=1.0,
        error_rate={"canary": 0.05},
        rollout={"guardrail_min_requests": 100},
    )
    last = out.steps[-1]
    assert last.decision.decision == "rollback"
    assert last.decision.reason.startswith("guardrail breached: error rate")
