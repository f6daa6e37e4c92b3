"""`flywheel features backfill | materialize | training-set | freshness` on a small event log."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from flywheel.cli.main import app
from tests.integration.features.pipeline import GENRES, REPO, catalog_frame, many_events, users_frame, write_log

pytestmark = pytest.mark.integration


def test_the_feature_commands_run_end_to_end(spark, tmp_path: Path) -> None:
    write_log(tmp_path / "log", many_events(days=4), [b"not json"])
    catalog_frame().to_parquet(tmp_path / "catalog.parquet")
    users_frame().to_parquet(tmp_path / "users.parquet")
    config = tmp_path / "flywheel.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "home": str(tmp_path),
                "event_log": {"local": {"path": str(tmp_path / "log")}},
                "features": {
                    "repo_path": str(REPO),
                    "data_dir": str(tmp_path / "features"),
                    "catalog_path": str(tmp_path / "catalog.parquet"),
                    "users_path": str(tmp_path / "users.parquet"),
                    "genres": list(GENRES),
                    "spark_master": "local[2]",
                    "shuffle_partitions": 2,
                },
            }
        )
    )
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, ["features", *args, "--config", str(config)])
        assert result.exit_code == (1 if args[0] == "freshness" else 0), result.output
        return result.output

    out = run("backfill")
    assert "invalid events (DLQ, excluded)" in out and "malformed_json" in out
    assert "materialized into sqlite" in run("materialize")
    out = run("training-set")
    frame = pd.read_parquet(tmp_path / "features" / "training" / "training_set.parquet")
    assert f"{len(frame):,}" in out and len(frame) > 10
    assert {"label_click", "propensity", "user_x_content_genre_overlap", "user_known"} <= set(frame.columns)
    out = run("freshness")  # the test data is from early November: stale
    assert "user_features" in out and "yes" in out


def test_backfill_names_the_missing_topic(tmp_path: Path) -> None:
    config = tmp_path / "flywheel.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "event_log": {"local": {"path": str(tmp_path / "empty-log")}},
                "features": {"repo_path": str(REPO), "data_dir": str(tmp_path / "features")},
            }
        )
    )
    result = CliRunner().invoke(app, ["features", "backfill", "--config", str(config)])
    assert result.exit_code == 2
    assert "event topic 'events'" in result.output
