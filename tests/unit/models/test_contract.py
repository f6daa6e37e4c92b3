"""The training-set contract names what is missing; feature-platform frames are adapted."""

import pandas as pd
import pytest

from flywheel.models.contract import CATALOG, TRAINING_SET, ContractError, adapt_feature_platform
from flywheel.simulator.frames import SimulatedWindow


def test_simulated_frames_satisfy_the_contracts(world: SimulatedWindow) -> None:
    TRAINING_SET.validate(world.frame.head(20).copy())
    CATALOG.validate(world.catalog)


def test_missing_columns_are_named(world: SimulatedWindow) -> None:
    frame = world.frame.head(20).copy().drop(columns=["user_skip_rate_7d", "like"])
    with pytest.raises(ContractError, match=r"training set: missing column\(s\): like, user_skip_rate_7d"):
        TRAINING_SET.validate(frame)


def test_wrong_kind_and_empty_frames_are_rejected(world: SimulatedWindow) -> None:
    frame = world.frame.head(20).copy()
    frame["event_timestamp"] = frame["event_timestamp"].astype(str)
    with pytest.raises(ContractError, match="event_timestamp \\(expected timestamp"):
        TRAINING_SET.validate(frame)
    with pytest.raises(ContractError, match="no rows"):
        TRAINING_SET.validate(world.frame.head(20).copy().iloc[:0])


def test_feature_platform_frames_are_adapted(world: SimulatedWindow) -> None:
    frame = world.frame.head(20).copy()
    platform = frame.rename(columns={h: f"label_{h}" for h in ("click", "watch_50", "complete", "like", "add_to_list")})
    platform = platform.rename(columns={"device_type": "user_device_preference"})
    platform["position"] = pd.NA
    platform["propensity"] = float("nan")
    adapted, notes = adapt_feature_platform(platform)
    TRAINING_SET.validate(adapted)
    assert (adapted["propensity"] == 1).all() and (adapted["position"] == 1).all()
    assert any("device_type" in n for n in notes)


def test_zero_based_positions_become_one_based(world: SimulatedWindow) -> None:
    frame = world.frame.head(20).copy()
    platform = frame.rename(columns={"click": "label_click"}).assign(position=frame["position"] - 1)
    adapted, notes = adapt_feature_platform(platform)
    assert adapted["position"].tolist() == frame["position"].tolist()
    assert "0-based positions shifted to 1-based" in notes
