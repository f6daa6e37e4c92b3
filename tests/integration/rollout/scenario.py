"""A rollout driven end to end by simulated users: shared by the rollout tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flywheel.config import FlywheelConfig
from flywheel.config.rollout import RolloutConfig
from flywheel.config.simulator import SimulatorConfig
from flywheel.events.local_log import LocalEventLog
from flywheel.registry import mlflow_registry as registry
from flywheel.serving.rollout_registry import AnalysisStep, analyze_rollout, audit_path, start_rollout
from flywheel.simulator.traffic import SimulatedUsers
from flywheel.simulator.world import build_world
from tests.support.canary import AffinityPolicy, PolicyRouter

MODEL = "flywheel-recommender"


@dataclass
class Outcome:
    steps: list[AnalysisStep]
    config: FlywheelConfig
    aliases: dict[str, str]


def run_rollout(
    tmp: Path,
    uri: str,
    *,
    champion_noise: float,
    canary_noise: float,
    canary_sign: float = 1.0,
    rollout: dict | None = None,
    requests_per_step: int = 2000,
    max_steps: int = 30,
    latency_ms: dict[str, float] | None = None,
    error_rate: dict[str, float] | None = None,
    rollout_id: str = "rollout-test",
) -> Outcome:
    """Register two versions, start a rollout of version 2, alternate traffic and analysis until it ends."""
    from mlflow import MlflowClient

    settings = {
        "schedule": [0.1, 0.3, 0.5],
        "min_impressions_per_stage": 2500,
        "horizon_impressions": 25000,
        "srm_grace_seconds": 0,
        **(rollout or {}),
    }
    config = FlywheelConfig.model_validate(
        {
            "home": str(tmp),
            "event_log": {"local": {"path": str(tmp / "log")}, "partitions": 2},
            "training": {"tracking_uri": uri, "artifact_root": str(tmp / "a")},
            "rollout": RolloutConfig.model_validate(settings).model_dump(),
        }
    )
    registry.connect(uri, "test", str(tmp / "a"))
    client = MlflowClient()
    client.create_registered_model(MODEL)
    for _ in range(2):
        client.create_model_version(MODEL, source=(tmp / "a").as_uri())
    client.set_registered_model_alias(MODEL, registry.CHAMPION, "1")
    client.set_registered_model_alias(MODEL, registry.CHALLENGER, "2")

    world = build_world(SimulatorConfig(users=3000, items=400, days=1, seed=3))
    users = SimulatedUsers(world, seed=1)
    log = LocalEventLog(tmp / "log", partitions=2)
    events, predictions = log.producer("events"), log.producer("predictions")
    start_rollout(MODEL, config.rollout, audit_path(config), rollout_id=rollout_id, at_ms=users.now_ms)
    policies = {
        "1": AffinityPolicy(world, noise=champion_noise, seed=1),
        "2": AffinityPolicy(world, noise=canary_noise, sign=canary_sign, seed=2),
    }
    router = PolicyRouter(
        MODEL, policies, predictions, lambda: users.now_ms, latency_ms=latency_ms, error_rate=error_rate
    )
    steps = []
    try:
        for _ in range(max_steps):
            users.run(router, events, requests=requests_per_step)
            predictions.flush()
            step = analyze_rollout(config, log, at_ms=users.now_ms)
            steps.append(step)
            router.refresh()
            horizon = (
                step.evidence is not None and step.evidence.canary_impressions >= config.rollout.horizon_impressions
            )
            if step.after.status != "running" or horizon:
                break
    finally:
        log.close()
    return Outcome(steps, config, registry.aliases(MODEL))
