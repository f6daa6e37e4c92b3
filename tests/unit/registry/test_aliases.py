"""Promotion and rollback move the champion / challenger aliases of a registered model (MLflow on SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from flywheel.cli.main import app
from flywheel.registry import mlflow_registry as registry

MODEL = "flywheel-recommender"


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A configuration whose registry holds versions 1 (champion) and 2 (challenger)."""
    import mlflow
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = tmp_path / "flywheel.yaml"
    path.write_text(
        yaml.safe_dump({"home": str(tmp_path), "training": {"tracking_uri": uri, "artifact_root": str(tmp_path / "a")}})
    )
    registry.connect(uri, "test", str(tmp_path / "a"))
    client = MlflowClient()
    client.create_registered_model(MODEL)
    for _ in range(2):
        client.create_model_version(MODEL, source=(tmp_path / "a").as_uri())
    client.set_registered_model_alias(MODEL, registry.CHAMPION, "1")
    client.set_registered_model_alias(MODEL, registry.CHALLENGER, "2")
    yield path
    mlflow.set_tracking_uri(None)


def test_promote_then_rollback(config: Path) -> None:
    moved = registry.promote(MODEL)
    assert (moved.champion, moved.replaced) == ("2", "1")
    assert registry.aliases(MODEL) == {"champion": "2", "previous_champion": "1"}
    with pytest.raises(ValueError, match="already the champion"):
        registry.promote(MODEL, "2")
    back = registry.rollback(MODEL, "p99 latency above the guardrail")
    assert (back.champion, back.replaced) == ("1", "2")
    assert registry.aliases(MODEL) == {"champion": "1"}
    from mlflow import MlflowClient

    assert MlflowClient().get_model_version(MODEL, "2").tags["rolled_back"] == "p99 latency above the guardrail"
    with pytest.raises(LookupError, match="no 'previous_champion'"):
        registry.rollback(MODEL)


def test_promote_an_unknown_version_says_so(config: Path) -> None:
    with pytest.raises(LookupError, match="no version or alias '7'"):
        registry.promote(MODEL, "7")
    assert registry.aliases(MODEL) == {"champion": "1", "challenger": "2"}


def test_cli_promote_list_rollback(config: Path) -> None:
    runner = CliRunner()
    promoted = runner.invoke(app, ["registry", "promote", "--config", str(config)])
    assert promoted.exit_code == 0, promoted.output
    assert "version 2 is champion; version 1 is previous_champion" in promoted.output
    listed = runner.invoke(app, ["registry", "list", "--config", str(config)])
    assert listed.exit_code == 0, listed.output
    assert "previous_champion" in listed.output and "champion" in listed.output
    rolled = runner.invoke(app, ["registry", "rollback", "--reason", "bad canary", "--config", str(config)])
    assert rolled.exit_code == 0, rolled.output
    assert "version 1 is champion again" in rolled.output
    again = runner.invoke(app, ["registry", "rollback", "--config", str(config)])
    assert again.exit_code == 1 and "no 'previous_champion' to roll back to" in again.output


def test_run_metrics_reads_the_flywheel_names_a_run_logged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    registry.connect(uri, "test", str(tmp_path / "a"))
    try:
        with mlflow.start_run() as run:
            mlflow.log_metrics({registry.metric_key("two_stage.ndcg@10"): 0.25, "view.logged": 1.0})
        found = registry.run_metrics(uri, run.info.run_id, ["two_stage.ndcg@10", "view.logged", "popularity.ndcg@10"])
    finally:
        mlflow.set_tracking_uri(None)
    assert found == {"two_stage.ndcg@10": 0.25, "view.logged": 1.0}  # what the run did not log is left out
