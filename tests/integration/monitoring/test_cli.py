"""`flywheel monitor drift|decisions` end to end through the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from flywheel.cli.main import app
from flywheel.monitoring.trigger import AuditRecord, append_audit
from tests.integration.monitoring.conftest import DriftedWorld

pytestmark = pytest.mark.integration


def _config_file(world: DriftedWorld, tmp_path: Path) -> Path:
    raw = world.config.model_dump(mode="json")
    raw["training"]["tracking_uri"] = f"sqlite:///{tmp_path / 'mlflow.db'}"  # no champion registered
    raw["monitoring"]["trigger"]["audit_path"] = str(tmp_path / "decisions.jsonl")
    path = tmp_path / "flywheel.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_drift_without_a_champion_reports_insufficient_data(drifted_world: DriftedWorld, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["monitor", "drift", "--window", "6h", "--config", str(_config_file(drifted_world, tmp_path))],
        env={"COLUMNS": "300"},
    )
    assert result.exit_code == 0, result.output
    assert "events" in result.output and "insufficient_data" in result.output


def test_a_bad_window_is_a_clear_error(drifted_world: DriftedWorld, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["monitor", "drift", "--window", "soon", "--config", str(_config_file(drifted_world, tmp_path))]
    )
    assert result.exit_code == 2
    assert "expected a duration such as 15m" in result.output


def test_decisions_prints_the_audit_log(drifted_world: DriftedWorld, tmp_path: Path) -> None:
    config = _config_file(drifted_world, tmp_path)
    append_audit(
        tmp_path / "decisions.jsonl",
        AuditRecord(1_767_600_000, "start", "fired", "drift firing", "FlywheelFeatureDrift", "retrain-1"),
    )
    append_audit(
        tmp_path / "decisions.jsonl",
        AuditRecord(1_767_600_030, "skip", "cooldown", "cooldown 21570 s left", "FlywheelFeatureDrift"),
    )
    result = CliRunner().invoke(app, ["monitor", "decisions", "--config", str(config)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "retrain-1" in result.output and "cooldown" in result.output
    assert "start:fired: 1, skip:cooldown: 1" in result.output
