"""A small simulated platform whose users shift device and taste on day 2 (the injected drift)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from flywheel.config import load_config
from flywheel.config.models import FlywheelConfig

DAY_MS = 86_400_000


@dataclass
class DriftedWorld:
    """The configuration and the simulated span."""

    config: FlywheelConfig
    start_ms: int
    end_ms: int


def drifted_config(home: Path, *, users: int = 300, days: int = 3, at_day: float = 2.0) -> FlywheelConfig:
    """Defaults under ``home`` with a small population and device + taste drift from ``at_day``."""
    raw = load_config(env={"FLYWHEEL_HOME": str(home)}).model_dump()
    raw["simulator"].update(users=users, items=300, days=days, new_items_per_day=5)
    raw["simulator"]["scenarios"]["device_shift"].update(enabled=True, at_day=at_day, sessions_fraction=0.9)
    raw["simulator"]["scenarios"]["taste_drift"].update(enabled=True, at_day=at_day, users_fraction=0.8, strength=3.0)
    raw["monitoring"]["drift"]["reports_dir"] = str(home / "reports")
    return FlywheelConfig.model_validate(raw)


@pytest.fixture(scope="session")
def drifted_world(tmp_path_factory: pytest.TempPathFactory) -> DriftedWorld:
    """Three simulated days in a local event log; tastes and devices shift at day 2."""
    from flywheel.simulator.engine import simulate

    config = drifted_config(tmp_path_factory.mktemp("drifted"))
    summary = simulate(config)
    return DriftedWorld(config, summary.start_ms, summary.end_ms)
