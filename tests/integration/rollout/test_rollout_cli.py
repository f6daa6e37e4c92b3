"""`flywheel rollout start|status|analyze|promote|rollback` on a real MLflow registry (SQLite) and local log."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from flywheel.cli.main import app
from flywheel.config import load_config
from flywheel.config.simulator import SimulatorConfig
from flywheel.events.local_log import LocalEventLog
from flywheel.registry import mlflow_registry as registry
from flywheel.serving.rollout_registry import now_ms, read_state
from flywheel.simulator.traffic import SimulatedUsers
from flywheel.simulator.world import build_world
from tests.support.canary import AffinityPolicy, PolicyRouter

pytestmark = pytest.mark.integration
MODEL = "flywheel-recommender"


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_uri: Callable[[], str]) -> Iterator[Path]:
    """A configuration whose registry holds versions 1 (champion) and 2 (challenger)."""
    import mlflow
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = mlflow_uri()
    path = tmp_path / "flywheel.yaml"
    settings = {
        "home": str(tmp_path),
        "event_log": {"partitions": 2, "local": {"path": str(tmp_path / "log")}},
        "training": {"tracking_uri": uri, "artifact_root": str(tmp_path / "a")},
        "rollout": {
            "schedule": [0.2, 0.5],
            "min_impressions_per_stage": 500,
            "min_units_per_variant": 50,
            "srm_grace_seconds": 0,
        },
    }
    path.write_text(yaml.safe_dump(settings))
    registry.connect(uri, "test", str(tmp_path / "a"))
    client = MlflowClient()
    client.create_registered_model(MODEL)
    for _ in range(2):
        client.create_model_version(MODEL, source=(tmp_path / "a").as_uri())
    client.set_registered_model_alias(MODEL, registry.CHAMPION, "1")
    client.set_registered_model_alias(MODEL, registry.CHALLENGER, "2")
    yield path
    mlflow.set_tracking_uri(None)


def traffic(config: Path, requests: int) -> None:
    """Simulated users calling the champion / canary policies through the router, from now on."""
    cfg = load_config(config)
    world = build_world(SimulatorConfig(users=1000, items=300, days=1, seed=5))
    users = SimulatedUsers(world, seed=2, start_ms=now_ms())
    log = LocalEventLog(cfg.event_log.local.path, partitions=2)
    policies = {"1": AffinityPolicy(world, noise=2.0, seed=1), "2": AffinityPolicy(world, noise=0.5, seed=2)}
    try:
        router = PolicyRouter(MODEL, policies, log.producer("predictions"), lambda: users.now_ms)
        users.run(router, log.producer("events"), requests=requests)
        router.predictions.flush()
    finally:
        log.close()


def test_the_rollout_commands(config: Path) -> None:
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, ["rollout", *args, "--config", str(config)])
        return result.exit_code, result.output

    code, out = run("analyze")
    assert code == 1 and "no rollout is running" in out

    code, out = run("start", "--id", "rollout-cli")
    assert code == 0, out
    assert "rollout rollout-cli: running, stage 0, canary fraction 0.2" in out
    code, out = run("start")
    assert code == 1 and "still running" in out

    code, out = run("analyze")  # nothing logged yet: no topic exists
    assert code == 0, out
    assert "collecting: 0 of 500 canary impressions" in out

    traffic(config, 600)
    code, out = run("analyze")
    assert code == 0, out
    assert "raise" in out and "fraction 0.2 -> 0.5" in out
    assert "canary vs champion" in out  # the evidence table
    assert read_state(MODEL).fraction == 0.5

    code, out = run("status")
    assert code == 0, out
    assert "last decisions" in out and "0.2 -> 0.5" in out

    code, out = run("promote", "--reason", "looks good")
    assert code == 0, out
    assert registry.aliases(MODEL) == {"champion": "2", "previous_champion": "1"}

    code, out = run("promote")
    assert code == 1 and "cannot promote" in out

    code, out = run("rollback", "--reason", "complaints")
    assert code == 0, out
    assert registry.aliases(MODEL) == {"champion": "1"}
    assert read_state(MODEL).status == "rolled_back"

    code, out = run("status", "--last", "3")
    assert "complaints" in out and "manual" in out
