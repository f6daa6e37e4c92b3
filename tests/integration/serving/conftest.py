"""A trained bundle and a running `flywheel serve` over it, shared by the serving integration tests."""

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.support.recommender import write_bundle
from tests.support.services import ModelServer, model_server


@pytest.fixture(scope="session")
def served_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    return write_bundle(tmp_path_factory.mktemp("served") / "bundle")


@pytest.fixture(scope="session")
def server(served_bundle: tuple[Path, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    """`flywheel serve --bundle ... --features none` (every user from content: no feature store here)."""
    home = tmp_path_factory.mktemp("home")
    with model_server(home, "--bundle", str(served_bundle[0]), "--features", "none") as running:
        yield running
