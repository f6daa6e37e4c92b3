"""A tiny simulated window shared by the model tests (the platform simulator, known generative truth)."""

import pandas as pd
import pytest

from flywheel.config.simulator import SimulatorConfig
from flywheel.config.training import RankerConfig, RetrievalConfig, TrainingConfig
from flywheel.models.dataset import TimeSplit, prepare_window, time_split
from flywheel.simulator.frames import SimulatedWindow, simulate_window


@pytest.fixture(scope="session")
def world() -> SimulatedWindow:
    return simulate_window(
        SimulatorConfig(users=80, items=60, days=4, new_items_per_day=5, seed=11, sessions_per_user_day=3.0)
    )


@pytest.fixture(scope="session")
def split(world: SimulatedWindow) -> TimeSplit:
    frame = prepare_window(world.frame, world.catalog, history_length=10)
    return time_split(frame, 0.2)


@pytest.fixture(scope="session")
def small_config() -> TrainingConfig:
    return TrainingConfig(
        retrieval=RetrievalConfig(epochs=3, history_length=10, batch_size=128),
        ranker=RankerConfig(epochs=2, batch_size=256),
        eval_k=(5, 10),
    )


@pytest.fixture(scope="session")
def catalog(world: SimulatedWindow) -> pd.DataFrame:
    return world.catalog
