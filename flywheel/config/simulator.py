"""Configuration of the platform simulator (owned by flywheel.simulator.engine)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from flywheel.config.base import Section

DeviceTypeName = Literal["tv", "mobile", "tablet", "web", "console"]


class TasteDriftScenario(Section):
    """From ``at_day`` on, part of the users' tastes move toward some genres."""

    enabled: bool = False
    """Switch the scenario on."""
    at_day: float = Field(default=3.0, ge=0)
    """When the drift happens, in days from the simulation start (fractions allowed)."""
    users_fraction: float = Field(default=0.5, ge=0, le=1)
    """Share of the users whose taste drifts."""
    toward_genres: dict[str, float] = {"documentary": 1.0}
    """Genres the drifting tastes move toward, with relative weights (names from the catalog)."""
    strength: float = Field(default=1.5, ge=0)
    """How far the tastes move, in units of a genre's latent direction."""


class DeviceShiftScenario(Section):
    """From ``at_day`` on, part of the sessions move to a (new) device of one type."""

    enabled: bool = False
    """Switch the scenario on."""
    at_day: float = Field(default=3.0, ge=0)
    """When the shift happens, in days from the simulation start."""
    to_device: DeviceTypeName = "mobile"
    """The device type sessions move to; each user gets one such device, listed in the ground truth."""
    sessions_fraction: float = Field(default=0.5, ge=0, le=1)
    """Share of the sessions after ``at_day`` that happen on that device."""


class BrokenEventsScenario(Section):
    """Schema-broken payloads: truncated JSON, wrong types, unknown types, missing fields, ..."""

    enabled: bool = False
    """Switch the scenario on."""
    rate: float = Field(default=0.002, ge=0, le=1)
    """Share of the records written that are broken (the kinds are mixed evenly)."""


class DuplicatesScenario(Section):
    """Client retries: the same event (same id, same bytes) delivered more than once."""

    enabled: bool = False
    """Switch the scenario on."""
    rate: float = Field(default=0.01, ge=0, le=1)
    """Share of the events that are retried."""
    max_copies: int = Field(default=3, ge=1, le=20)
    """A retried event gets 1..max_copies extra copies (uniformly)."""


class LateEventsScenario(Section):
    """Events delivered late: they land in the log after events with later timestamps."""

    enabled: bool = False
    """Switch the scenario on."""
    rate: float = Field(default=0.01, ge=0, le=1)
    """Share of the events delivered late."""
    min_delay_seconds: float = Field(default=120.0, gt=0)
    """Smallest delivery delay of a late event."""
    max_delay_seconds: float = Field(default=7200.0, gt=0)
    """Largest delivery delay of a late event."""

    @model_validator(mode="after")
    def _delays_ordered(self) -> LateEventsScenario:
        if self.max_delay_seconds < self.min_delay_seconds:
            raise ValueError("max_delay_seconds must be >= min_delay_seconds")
        return self


class ClockSkewScenario(Section):
    """Devices whose clock is off: their events carry shifted timestamps."""

    enabled: bool = False
    """Switch the scenario on."""
    devices_fraction: float = Field(default=0.05, ge=0, le=1)
    """Share of the devices with a skewed clock."""
    max_skew_seconds: float = Field(default=120.0, gt=0)
    """A skewed clock is off by a uniform amount in [-max, +max] seconds."""


class BotTrafficScenario(Section):
    """Bot accounts: many sessions, clicks regardless of position and taste, almost no watching."""

    enabled: bool = False
    """Switch the scenario on."""
    users_fraction: float = Field(default=0.01, ge=0, le=1)
    """Bots added, as a share of the human users (flagged ``is_bot`` in the ground truth)."""
    activity_multiplier: float = Field(default=20.0, ge=1)
    """Sessions per day of a bot relative to an average human."""


class OutageScenario(Section):
    """A collection outage: events in a time window are never written."""

    enabled: bool = False
    """Switch the scenario on."""
    at_day: float = Field(default=2.0, ge=0)
    """Start of the outage, in days from the simulation start."""
    hours: float = Field(default=1.0, gt=0)
    """Length of the outage."""


class ScenariosConfig(Section):
    """The scenario switches (all off unless enabled)."""

    taste_drift: TasteDriftScenario = TasteDriftScenario()
    """Taste drift at a given time."""
    device_shift: DeviceShiftScenario = DeviceShiftScenario()
    """Device-mix shift at a given time."""
    broken_events: BrokenEventsScenario = BrokenEventsScenario()
    """Schema-broken events."""
    duplicates: DuplicatesScenario = DuplicatesScenario()
    """Duplicates (retry storms)."""
    late_events: LateEventsScenario = LateEventsScenario()
    """Late and out-of-order events."""
    clock_skew: ClockSkewScenario = ClockSkewScenario()
    """Clock skew of some devices."""
    bots: BotTrafficScenario = BotTrafficScenario()
    """Bot traffic."""
    outage: OutageScenario = OutageScenario()
    """A missing-events outage."""


class SimulatedExperiment(Section):
    """An A/B test planted in the simulated traffic, with known true lifts."""

    id: str = Field(min_length=1)
    """Experiment id, written to ``context.experiment_id``."""
    start: float = Field(default=0.0, ge=0)
    """Start, in days from the simulation start. Sessions that begin from then on carry the
    experiment context and get the lifts; earlier sessions are the pre-period (no context).
    An event carries one experiment: the first listed that is running when its session begins."""
    variants: dict[str, float] = {"control": 0.5, "treatment": 0.5}
    """Variant names and their traffic weights (normalised to sum to 1)."""
    click_lift: dict[str, float] = {}
    """Relative change of the click probability per variant (0.05 = +5 %)."""
    watch_lift: dict[str, float] = {}
    """Relative change of the mean watch fraction per variant."""

    @model_validator(mode="after")
    def _check(self) -> SimulatedExperiment:
        if not self.variants or any(w <= 0 for w in self.variants.values()):
            raise ValueError("variants must be a non-empty mapping of positive weights")
        for name, lifts in (("click_lift", self.click_lift), ("watch_lift", self.watch_lift)):
            unknown = sorted(set(lifts) - set(self.variants))
            if unknown:
                raise ValueError(f"{name} names unknown variants {unknown}")
            if any(v <= -1 for v in lifts.values()):
                raise ValueError(f"{name} values must be > -1")
        return self


class SimulatorConfig(Section):
    """The platform simulator."""

    seed: int = 7
    """Random seed; the same seed and configuration give the same bytes."""
    start_date: date = date(2026, 1, 5)
    """First simulated day (UTC midnight)."""
    days: int = Field(default=7, ge=1, le=3650)
    """Number of simulated days."""
    users: int = Field(default=5000, ge=1)
    """Human users (bots come on top)."""
    items: int = Field(default=2000, ge=10)
    """Titles in the catalog at the start."""
    new_items_per_day: int = Field(default=30, ge=0)
    """Titles arriving each day (cold start)."""
    taste_dimensions: int = Field(default=16, ge=2, le=256)
    """Size of the latent taste vectors of users and items."""
    taste_scale: float = Field(default=5.0, gt=0)
    """How far apart the users' tastes are: the length scale of the taste vectors (5: the affinity
    logit of a loved genre reaches about +2; 10: about +4, users who know what they like, as in
    ``flywheel monitor loop``)."""
    sessions_per_user_day: float = Field(default=0.8, gt=0)
    """Mean sessions of an average user per day (activity varies across users)."""
    rows_per_session: float = Field(default=3.0, ge=1)
    """Mean home-page rows a session looks at."""
    max_rows: int = Field(default=8, ge=1, le=64)
    """Most rows a session looks at."""
    items_per_row: int = Field(default=10, ge=1, le=50)
    """Positions per row."""
    position_bias: float = Field(default=1.0, ge=0)
    """Exponent of the examination probability (1 / (1 + position)) ** bias; 0 = no bias."""
    row_decay: float = Field(default=0.85, gt=0, le=1)
    """Examination multiplier per row further down the page."""
    max_click_probability: float = Field(default=0.5, gt=0, le=1)
    """Click probability of a fully examined item of affinity 1."""
    play_after_click: float = Field(default=0.85, ge=0, le=1)
    """Probability that a click starts playback."""
    search_rate: float = Field(default=0.25, ge=0, le=1)
    """Probability that a session starts with a search."""
    batch_sessions: int = Field(default=500, ge=1)
    """Sessions generated per vectorised batch (changes the bytes; keep it fixed for determinism)."""
    scenarios: ScenariosConfig = ScenariosConfig()
    """Scenario switches."""
    experiments: list[SimulatedExperiment] = []
    """A/B tests planted in the traffic."""
    ground_truth_dir: Path = Path(".flywheel/ground_truth")
    """Folder where the ground truth (catalog, users, latent tastes, manifest) is written."""

    @model_validator(mode="after")
    def _unique_experiments(self) -> SimulatorConfig:
        ids = [e.id for e in self.experiments]
        if len(ids) != len(set(ids)):
            raise ValueError("experiment ids must be unique")
        return self
