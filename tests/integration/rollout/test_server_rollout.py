"""The whole rollout path on the real server: tags start a canary in `flywheel serve`, simulated users call it
over HTTP, the analysis reads the server's prediction log and their feedback, and its raise reaches the server."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from flywheel.config import load_config
from flywheel.config.simulator import SimulatorConfig
from flywheel.events.local_log import LocalEventLog
from flywheel.registry.mlflow_registry import CHALLENGER, CHAMPION, connect, set_alias
from flywheel.serving.client import recommend
from flywheel.serving.prediction_log import read_predictions
from flywheel.serving.rollout_registry import analyze_rollout, audit_path, start_rollout
from flywheel.serving.routing import assign_variant
from flywheel.simulator.traffic import Served, SimulatedUsers, http_recommender
from flywheel.simulator.world import build_world
from tests.support.recommender import write_bundle
from tests.support.services import model_server

pytestmark = pytest.mark.integration
MODEL = "flywheel-recommender"
ROLLOUT = "r-e2e"


def _register(bundle: Path) -> str:
    import mlflow
    from mlflow import MlflowClient

    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(bundle), artifact_path="bundle")
    client = MlflowClient()
    if not client.search_registered_models(f"name='{MODEL}'"):
        client.create_registered_model(MODEL)
    return str(client.create_model_version(MODEL, f"runs:/{run.info.run_id}/bundle", run.info.run_id).version)


def _until(condition: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout_s} s")


def test_a_rollout_runs_through_the_real_server(tmp_path: Path, mlflow_uri: Callable[[], str]) -> None:
    import mlflow

    bundle, _ = write_bundle(tmp_path / "bundle")
    home = tmp_path / "home"
    home.mkdir()
    uri = mlflow_uri()
    connect(uri, "rollout-e2e", str(home / "mlartifacts"))
    v1, v2 = _register(bundle), _register(bundle)
    set_alias(MODEL, CHAMPION, v1)
    set_alias(MODEL, CHALLENGER, v2)
    config_path = home / "flywheel.yaml"
    config_path.write_text(
        f"home: {home}\n"
        f"event_log: {{local: {{path: '{home}/log'}}}}\n"
        "serving: {poll_interval_s: 0.2, feature_source: none, prediction_log_sample_rate: 1.0,"
        " prediction_log_flush_ms: 50}\n"
        f"training: {{tracking_uri: '{uri}', artifact_root: '{home}/mlartifacts', model_name: {MODEL}}}\n"
        "rollout: {schedule: [0.3, 0.6], min_impressions_per_stage: 40, min_units_per_variant: 3,"
        " srm_grace_seconds: 0}\n",
        encoding="utf-8",
    )
    cfg = load_config(config_path)
    world = build_world(SimulatorConfig(users=300, items=100, days=1, seed=8))
    user_ids = world.population.user_ids
    try:
        with model_server(home, "--config", str(config_path)) as server:
            start_rollout(MODEL, cfg.rollout, audit_path(cfg), rollout_id=ROLLOUT)
            canary_user = next(u for u in user_ids if assign_variant(u, ROLLOUT, 0.3) == "canary")
            _until(lambda: recommend(server.http_url, canary_user).variant == "canary", "the canary start")

            log = LocalEventLog(home / "log", partitions=cfg.event_log.partitions)
            users = SimulatedUsers(world, seed=4, realtime=True)
            producer = log.producer("events")
            call = http_recommender(server.http_url, rollout_id=ROLLOUT)
            served: set[str] = set()

            def recommend_and_note(user_id: str, k: int) -> Served:
                answer = call(user_id, k)
                served.add(answer.request_id)
                return answer

            summary = users.run(recommend_and_note, producer, requests=120, k=5)
            users.drain(producer)
            assert summary.failed == 0, summary.last_error
            assert set(summary.by_variant) == {"champion", "canary"}

            def logged() -> bool:
                # every answer the users got, not a count: the polls above are in the log too
                return served <= {r.request_id for r in read_predictions(log) if r.rollout_id == ROLLOUT}

            _until(logged, "the prediction log flush")
            step = analyze_rollout(cfg, log)
            evidence = step.evidence
            assert evidence is not None
            canary, champion = evidence.variants["canary"], evidence.variants["champion"]
            # the run's answers and the poll's one canary answer: polls served before the rollout ran carry no id
            assert champion.requests == summary.by_variant["champion"]
            assert canary.requests == summary.by_variant["canary"] + 1
            # every title served to the simulated users came back as an impression of its request
            assert canary.impressions == 5 * summary.by_variant["canary"]
            assert champion.impressions == 5 * summary.by_variant["champion"]
            assert not evidence.srm.mismatch
            assert (step.decision.decision, step.after.fraction) == ("raise", 0.6)

            moved = next(u for u in user_ids if assign_variant(u, ROLLOUT, 0.6) != assign_variant(u, ROLLOUT, 0.3))
            _until(lambda: recommend(server.http_url, moved).variant == "canary", "the raised fraction")
            log.close()
    finally:
        mlflow.set_tracking_uri(None)
    frame = pd.read_json(audit_path(cfg), lines=True)
    assert frame["decision"].tolist() == ["start", "raise"]
