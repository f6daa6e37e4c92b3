"""The simulated population: users with latent tastes, tiers, households and devices.

Households hold one to four users and one to four devices; each user logs in on one to
three of the household's devices, so several users share a device and many users have
several. A fraction of the devices has a skewed clock (the clock-skew scenario). Optional
bot accounts come after the humans, with their own households and devices.

Experiment assignment (:func:`assign_variant`) is the deterministic SHA-256 rule the
experimentation platform uses, so the simulator and the analysis agree on every user's
variant without sharing state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from flywheel.simulator.catalog import DAY_MS, GENRES

TIERS: tuple[str, ...] = ("free", "basic", "standard", "premium")
TIER_WEIGHTS: tuple[float, ...] = (0.3, 0.25, 0.3, 0.15)
DEVICE_TYPES: tuple[str, ...] = ("tv", "mobile", "tablet", "web", "console")
DEVICE_TYPE_WEIGHTS: tuple[float, ...] = (0.35, 0.35, 0.1, 0.15, 0.05)
_OS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "tv": ("tizen", "webos", "androidtv", "tvos"),
    "mobile": ("ios", "android"),
    "tablet": ("ipados", "android"),
    "web": ("chrome", "safari", "firefox", "edge"),
    "console": ("playstation", "xbox"),
}
COUNTRIES: tuple[str, ...] = ("US", "GB", "DE", "FR", "BR", "IN", "JP")
COUNTRY_WEIGHTS: tuple[float, ...] = (0.35, 0.12, 0.12, 0.1, 0.12, 0.12, 0.07)


def user_id(index: int) -> str:
    """The id of the user at ``index`` (0-based): ``u000001`` for index 0."""
    return f"u{index + 1:06d}"


def assign_variant(experiment_id: str, user: str, variants: Mapping[str, float]) -> str:
    """The variant of ``user`` in an experiment: SHA-256 of ``"{experiment_id}:{user}"``.

    The first 8 bytes of the digest, read big-endian and divided by 2**64, give a point in
    [0, 1); it falls into the variant whose cumulative (normalised) weight first exceeds it,
    in the mapping's order.

    Args:
        experiment_id: The experiment.
        user: The user id.
        variants: Variant names and positive weights.
    """
    digest = hashlib.sha256(f"{experiment_id}:{user}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    total = sum(variants.values())
    cumulative = 0.0
    names = list(variants)
    for name in names:
        cumulative += variants[name] / total
        if point < cumulative:
            return name
    return names[-1]


@dataclass(frozen=True)
class Devices:
    """Columns of the device table."""

    device_ids: list[str]
    device_type: np.ndarray
    """Index into :data:`DEVICE_TYPES`."""
    os: list[str]
    app_version: list[str]
    household: np.ndarray
    clock_skew_ms: np.ndarray
    """Offset of the device clock (0 for a correct clock)."""
    introduced_ms: np.ndarray
    """When the device appears (the device-shift scenario's devices); 0 for the others."""


@dataclass(frozen=True)
class Population:
    """Columns of the user table and the device graph."""

    user_ids: list[str]
    tier: np.ndarray
    """Index into :data:`TIERS`."""
    signup_ms: np.ndarray
    household: np.ndarray
    household_ids: list[str]
    country: np.ndarray
    """Index into :data:`COUNTRIES`, per household."""
    activity: np.ndarray
    """Sessions per day relative to the configured mean."""
    is_bot: np.ndarray
    taste: np.ndarray
    """Latent taste vectors, shape (users, dimensions)."""
    taste_scale: float
    """Length scale the tastes were drawn with (a taste drift moves them in proportion)."""
    genre_weights: np.ndarray
    """The genre mixture each taste was drawn from, shape (users, genres)."""
    device_offsets: np.ndarray
    """User u logs in on ``device_list[device_offsets[u]:device_offsets[u + 1]]``."""
    device_list: np.ndarray
    shift_device: np.ndarray
    """The device each user moves to in the device-shift scenario (-1 when off)."""
    devices: Devices

    def __len__(self) -> int:
        return len(self.user_ids)


def _device_os(rng: np.random.Generator, types: np.ndarray) -> tuple[list[str], list[str]]:
    pick = rng.random(len(types))
    minor = rng.integers(0, 12, len(types))
    patch = rng.integers(0, 5, len(types))
    oses = []
    for t, p in zip(types.tolist(), pick.tolist(), strict=True):
        choices = _OS_BY_TYPE[DEVICE_TYPES[t]]
        oses.append(choices[int(p * len(choices))])
    versions = [f"5.{a}.{b}" for a, b in zip(minor.tolist(), patch.tolist(), strict=True)]
    return oses, versions


@dataclass(frozen=True)
class _Group:
    """People drawn together: households, devices and tastes, with group-local indices."""

    household: np.ndarray
    households: int
    country: np.ndarray
    device_household: np.ndarray
    device_type: np.ndarray
    os: list[str]
    app_version: list[str]
    take: np.ndarray
    device_list: np.ndarray
    weights: np.ndarray
    taste: np.ndarray
    activity: np.ndarray
    signup_ms: np.ndarray
    tier: np.ndarray


def _draw_group(
    rng: np.random.Generator,
    n: int,
    *,
    alone: bool,
    days: int,
    start_ms: int,
    directions: np.ndarray,
    taste_scale: float,
) -> _Group:
    genres, dims = directions.shape
    # households: consecutive people, sizes 1..4 (or one each)
    if alone:
        household = np.arange(n)
    else:
        sizes = rng.choice(np.array([1, 2, 3, 4]), n, p=np.array([0.35, 0.3, 0.2, 0.15]))
        household = np.repeat(np.arange(n), sizes)[:n]
    households = int(household.max()) + 1 if n else 0
    country = rng.choice(len(COUNTRIES), households, p=np.array(COUNTRY_WEIGHTS))
    # devices: 1..4 per household; each person uses a random subset of 1..3 of them
    per_household = rng.integers(1, 5, households)
    device_household = np.repeat(np.arange(households), per_household)
    first_device = np.concatenate([[0], np.cumsum(per_household)[:-1]]).astype(np.int64)
    device_type = rng.choice(len(DEVICE_TYPES), len(device_household), p=np.array(DEVICE_TYPE_WEIGHTS))
    owned = per_household[household]
    take = np.minimum(owned, rng.integers(1, 4, n))
    shuffle = np.where(np.arange(4)[None, :] < owned[:, None], rng.random((n, 4)), np.inf)
    slot = np.sort(np.argsort(shuffle, axis=1)[:, :3], axis=1)
    slot = np.where(np.arange(3)[None, :] < take[:, None], slot, -1)
    device_list = (first_device[household][:, None] + slot)[slot >= 0]
    oses, versions = _device_os(rng, device_type)
    weights = rng.dirichlet(np.full(genres, 0.3), n)
    taste = taste_scale * weights @ directions + rng.normal(0, 0.3, (n, dims))
    activity = rng.lognormal(-0.125, 0.5, n)
    signup = start_ms - rng.integers(DAY_MS, 4 * 365 * DAY_MS, n)
    joins_during_run = (rng.random(n) < 0.05) & (not alone)
    signup[joins_during_run] = start_ms + rng.integers(0, days * DAY_MS, int(joins_during_run.sum()))
    return _Group(
        household=household,
        households=households,
        country=country,
        device_household=device_household,
        device_type=device_type,
        os=oses,
        app_version=versions,
        take=take,
        device_list=device_list,
        weights=weights,
        taste=taste,
        activity=activity,
        signup_ms=signup,
        tier=rng.choice(len(TIERS), n, p=np.array(TIER_WEIGHTS)),
    )


def build_population(
    rng: np.random.Generator,
    *,
    users: int,
    days: int,
    start_ms: int,
    directions: np.ndarray,
    taste_scale: float,
    bots: int = 0,
    bot_rng: np.random.Generator | None = None,
    skewed_devices_fraction: float = 0.0,
    max_skew_ms: int = 0,
    skew_rng: np.random.Generator | None = None,
    shift_device_type: str | None = None,
    shift_at_ms: int = 0,
    shift_rng: np.random.Generator | None = None,
) -> Population:
    """Generate ``users`` humans followed by ``bots`` bot accounts.

    The humans are drawn from ``rng`` alone, and each scenario draws from its own generator,
    so switching a scenario on changes nothing else: the same seed gives the same humans,
    households and devices with or without bots, skewed clocks or shifted devices.

    Args:
        rng: The random generator of the humans.
        users: Human users (5 % of them sign up during the run).
        days: Simulated days.
        start_ms: Simulation start.
        directions: Genre directions of the catalog.
        taste_scale: Length scale of the taste vectors (``simulator.taste_scale``): how far apart
            users' tastes are (5: the affinity logit of a loved genre reaches about +2; 10: about +4).
        bots: Bot accounts, appended after the humans, each alone in a household.
        bot_rng: Generator of the bots.
        skewed_devices_fraction: Share of devices with a skewed clock.
        max_skew_ms: Largest clock offset.
        skew_rng: Generator of the clock offsets.
        shift_device_type: Device type of the device-shift scenario (None when off): every
            user gets one such device, introduced at ``shift_at_ms``.
        shift_at_ms: When those devices appear.
        shift_rng: Generator of those devices' OS and app version.
    """
    spare = np.random.default_rng(0)

    def draw_group(group_rng: np.random.Generator, n: int, alone: bool) -> _Group:
        return _draw_group(
            group_rng, n, alone=alone, days=days, start_ms=start_ms, directions=directions, taste_scale=taste_scale
        )

    groups = [draw_group(rng, users, False)]
    if bots:
        groups.append(draw_group(bot_rng or spare, bots, True))
    household_base = np.cumsum([0] + [g.households for g in groups])[:-1]
    device_base = np.cumsum([0] + [len(g.device_household) for g in groups])[:-1]
    household = np.concatenate([g.household + base for g, base in zip(groups, household_base, strict=True)])
    device_household = np.concatenate(
        [g.device_household + base for g, base in zip(groups, household_base, strict=True)]
    )
    device_list = np.concatenate([g.device_list + base for g, base in zip(groups, device_base, strict=True)])
    device_type = np.concatenate([g.device_type for g in groups])
    oses = [name for g in groups for name in g.os]
    versions = [v for g in groups for v in g.app_version]
    n = users + bots
    is_bot = np.arange(n) >= users

    shift_device = np.full(n, -1, dtype=np.int64)
    introduced = np.zeros(len(device_household), dtype=np.int64)
    if shift_device_type is not None:
        shift_device = len(device_household) + np.arange(n)
        shift_types = np.full(n, DEVICE_TYPES.index(shift_device_type))
        shift_os, shift_versions = _device_os(shift_rng or spare, shift_types)
        device_household = np.concatenate([device_household, household])
        device_type = np.concatenate([device_type, shift_types])
        oses += shift_os
        versions += shift_versions
        introduced = np.concatenate([introduced, np.full(n, shift_at_ms, dtype=np.int64)])
    total_devices = len(device_household)
    skew = np.zeros(total_devices, dtype=np.int64)
    if max_skew_ms > 0 and skewed_devices_fraction > 0:
        draw = skew_rng or spare
        skewed = draw.random(total_devices) < skewed_devices_fraction
        offsets = draw.integers(-max_skew_ms, max_skew_ms + 1, total_devices)
        skew[skewed] = offsets[skewed]
    households = int(sum(g.households for g in groups))
    return Population(
        user_ids=[user_id(i) for i in range(n)],
        tier=np.concatenate([g.tier for g in groups]),
        signup_ms=np.concatenate([g.signup_ms for g in groups]),
        household=household,
        household_ids=[f"h{i + 1:06d}" for i in range(households)],
        country=np.concatenate([g.country for g in groups]),
        activity=np.concatenate([g.activity for g in groups]),
        is_bot=is_bot,
        taste=np.concatenate([g.taste for g in groups]),
        taste_scale=taste_scale,
        genre_weights=np.concatenate([g.weights for g in groups]),
        device_offsets=np.concatenate([[0], np.cumsum(np.concatenate([g.take for g in groups]))]),
        device_list=device_list,
        shift_device=shift_device,
        devices=Devices(
            device_ids=[f"d{i + 1:07d}" for i in range(total_devices)],
            device_type=device_type,
            os=oses,
            app_version=versions,
            household=device_household,
            clock_skew_ms=skew,
            introduced_ms=introduced,
        ),
    )


def drifted_tastes(
    rng: np.random.Generator,
    taste: np.ndarray,
    directions: np.ndarray,
    *,
    users_fraction: float,
    toward: Mapping[str, float],
    strength: float,
    taste_scale: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Tastes after the drift: a fraction of users moves toward the given genres, by
    ``strength`` x half the population's ``taste_scale``.

    Returns:
        ``(tastes, drifted)``: the new taste matrix and a boolean mask of the drifted users.

    Raises:
        ValueError: A genre is not in the catalog.
    """
    unknown = sorted(set(toward) - set(GENRES))
    if unknown:
        raise ValueError(f"taste drift names unknown genres {unknown}; known: {list(GENRES)}")
    target = np.zeros(directions.shape[1])
    total = sum(toward.values()) or 1.0
    for name, weight in toward.items():
        target += weight / total * directions[GENRES.index(name)]
    drifted = rng.random(len(taste)) < users_fraction
    after = taste.copy()
    after[drifted] += strength * taste_scale * 0.5 * target
    return after, drifted
