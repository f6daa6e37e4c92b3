"""A migrated MLflow database made once per session: each test copies it instead of migrating its own."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite database with every migration applied (they take seconds each time)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}", registry_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_uri(mlflow_template: Path, tmp_path: Path) -> Callable[[], str]:
    """The sqlite URI of this test's own copy of the migrated database."""

    def make() -> str:
        path = tmp_path / "mlflow.db"
        if not path.exists():
            shutil.copyfile(mlflow_template, path)
        return f"sqlite:///{path}"

    return make
