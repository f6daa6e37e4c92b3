"""The server follows the registry: the champion alias moves and the rollout tags start a canary, no restart."""

import time
from pathlib import Path

import pandas as pd
import pytest

from flywheel.registry.mlflow_registry import CHALLENGER, CHAMPION, connect, set_alias
from flywheel.serving.client import RecommendResult, recommend
from flywheel.serving.routing import assign_variant
from tests.support.services import model_server

pytestmark = pytest.mark.integration
MODEL = "flywheel-recommender"


def _register(bundle: Path, experiment_id: str) -> str:
    import mlflow
    from mlflow import MlflowClient

    with mlflow.start_run(experiment_id=experiment_id) as run:  # artifacts under the test's folder
        mlflow.log_artifacts(str(bundle), artifact_path="bundle")
    client = MlflowClient()
    try:
        client.create_registered_model(MODEL)
    except mlflow.exceptions.MlflowException:
        pass
    return str(client.create_model_version(MODEL, f"runs:/{run.info.run_id}/bundle", run.info.run_id).version)


def _until(condition, what: str, timeout_s: float = 60.0) -> RecommendResult:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = condition()
        if result is not None:
            return result
    raise AssertionError(f"the server did not {what} within {timeout_s} s")


def test_alias_moves_and_rollout_tags_reload_the_server(
    served_bundle: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    home = tmp_path / "home"
    home.mkdir()
    uri = f"sqlite:///{home}/mlflow.db"
    experiment = connect(uri, "serving-test", str(home / "mlartifacts"))
    v1, v2 = _register(served_bundle[0], experiment), _register(served_bundle[0], experiment)
    set_alias(MODEL, CHAMPION, v1)
    config = home / "flywheel.yaml"
    config.write_text(
        f"home: {home}\n"
        "serving: {poll_interval_s: 0.2, feature_source: none, prediction_log_sample_rate: 0}\n"
        f"training: {{tracking_uri: '{uri}', artifact_root: '{home}/mlartifacts', model_name: {MODEL}}}\n",
        encoding="utf-8",
    )
    with model_server(home, "--config", str(config)) as server:
        assert recommend(server.http_url, "u0001").model_version == v1
        set_alias(MODEL, CHAMPION, v2)
        _until(
            lambda: (r := recommend(server.http_url, "u0001")).model_version == v2 and r or None,
            f"serve version {v2} after the champion alias moved",
        )
        set_alias(MODEL, CHALLENGER, v1)
        client = MlflowClient()
        for key, value in {"rollout.id": "r-42", "rollout.fraction": "0.5", "rollout.stage": "2"}.items():
            client.set_registered_model_tag(MODEL, key, value)
        client.set_registered_model_tag(MODEL, "rollout.status", "running")
        users = [f"u{i:04d}" for i in range(30)]
        canary_user = next(u for u in users if assign_variant(u, "r-42", 0.5) == "canary")
        _until(
            lambda: (r := recommend(server.http_url, canary_user)).variant == "canary" and r or None,
            "start the canary after the rollout tags were set",
        )
        for user in users:
            answer = recommend(server.http_url, user)
            expected = assign_variant(user, "r-42", 0.5)
            assert (answer.variant, answer.model_version) == (expected, v1 if expected == "canary" else v2)
        assert server.process.poll() is None  # no restart
