"""A tiny trained model version on disk, shared by the serving unit tests."""

from pathlib import Path

import pandas as pd
import pytest

from flywheel.serving.features import StaticFeatures
from tests.support.recommender import static_features, write_bundle


@pytest.fixture(scope="session")
def bundle_window(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    return write_bundle(tmp_path_factory.mktemp("bundle") / "bundle")


@pytest.fixture(scope="session")
def bundle_dir(bundle_window: tuple[Path, pd.DataFrame]) -> Path:
    return bundle_window[0]


@pytest.fixture(scope="session")
def window(bundle_window: tuple[Path, pd.DataFrame]) -> pd.DataFrame:
    return bundle_window[1]


@pytest.fixture(scope="session")
def features(window: pd.DataFrame) -> StaticFeatures:
    return static_features(window)
