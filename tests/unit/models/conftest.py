"""A tiny simulated world shared by the model tests (known generative truth)."""

import pandas as pd
import pytest

from flywheel.config.training import RankerConfig, RetrievalConfig, TrainingConfig
from flywheel.models.dataset import TimeSplit, prepare_window, time_split
from flywheel.models.synthetic import SyntheticWorld, make_world


@pytest.fixture(scope="session")
def world() -> SyntheticWorld:
    return make_world(n_users=80, n_items=60, new_item_share=0.15, seed=11)


@pytest.fixture(scope="session")
def split(world: SyntheticWorld) -> TimeSplit:
    frame = prepare_window(world.impressions(600, seed=12), world.catalog, history_length=10)
    return time_split(frame, 0.2)


@pytest.fixture(scope="session")
def small_config() -> TrainingConfig:
    return TrainingConfig(
        retrieval=RetrievalConfig(epochs=3, history_length=10, batch_size=128),
        ranker=RankerConfig(epochs=2, batch_size=256),
        eval_k=(5, 10),
    )


@pytest.fixture(scope="session")
def catalog(world: SyntheticWorld) -> pd.DataFrame:
    return world.catalog
