"""Configuration of the platform simulator (owned by flywheel.events.simulator)."""

from __future__ import annotations

from flywheel.config.base import Section


class SimulatorConfig(Section):
    """The platform simulator."""

    seed: int = 7
    """Random seed; the same seed gives the same events."""
