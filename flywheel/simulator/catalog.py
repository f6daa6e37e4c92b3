"""The simulated catalog: films, series episodes, music tracks and podcasts with latent vectors.

Every title has a content type, a primary genre (plus sometimes a secondary one), a creator,
a duration, a release time, a short synopsis and an arrival time (when it becomes available).
The initial catalog is available from the start of the simulation; new titles arrive during
it (cold start) and are appended in arrival order, so "titles available at time t" is always
a prefix of the catalog.

Latent structure: each genre has a direction in the taste space (``genre_directions``); a
title's vector is mostly its primary genre's direction, some of its secondary genre's, its
creator's style (every creator has a vector of its own: people who like a creator's work like
its other work), the theme of its synopsis subject (the subject is written into the synopsis)
and a small idiosyncratic part. So most of what makes a title appealing to someone can be read
from its content (genre, creator, synopsis), which is what lets a new title be recommended
before anyone has watched it; the idiosyncratic part is only learnable from interactions. Its
``bias`` is its intrinsic appeal (quality, hype) and also drives its popularity.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

CONTENT_TYPES: tuple[str, ...] = ("film", "series_episode", "track", "podcast")
CONTENT_TYPE_WEIGHTS: tuple[float, ...] = (0.3, 0.35, 0.25, 0.1)

VIDEO_GENRES = (
    "action",
    "comedy",
    "drama",
    "thriller",
    "horror",
    "romance",
    "sci_fi",
    "documentary",
    "animation",
    "crime",
)
MUSIC_GENRES = ("pop", "rock", "hip_hop", "electronic", "jazz", "classical")
PODCAST_GENRES = ("news", "true_crime", "technology", "history")
#: Every genre, in a fixed order (the index is the genre code used in arrays).
GENRES: tuple[str, ...] = VIDEO_GENRES + MUSIC_GENRES + PODCAST_GENRES
_GENRES_BY_TYPE = {
    "film": VIDEO_GENRES,
    "series_episode": VIDEO_GENRES,
    "track": MUSIC_GENRES,
    "podcast": PODCAST_GENRES,
}

_ADJECTIVES = (
    "Silent",
    "Broken",
    "Golden",
    "Hidden",
    "Last",
    "Electric",
    "Crimson",
    "Distant",
    "Wild",
    "Frozen",
    "Secret",
    "Endless",
    "Midnight",
    "Lucky",
    "Hollow",
    "Bright",
)
_NOUNS = (
    "Harbor",
    "Signal",
    "Kingdom",
    "Garden",
    "Frontier",
    "Echo",
    "Machine",
    "River",
    "Empire",
    "Orchard",
    "Horizon",
    "Mirror",
    "Voyage",
    "Circuit",
    "Summer",
    "Letter",
)
_SUBJECTS = (
    "a retired detective",
    "two estranged sisters",
    "a small-town band",
    "an AI researcher",
    "a reluctant heir",
    "a crew of smugglers",
    "a night-shift nurse",
    "a chess prodigy",
    "a family of farmers",
    "a rookie journalist",
    "an exiled prince",
    "a street artist",
)
_TWISTS = (
    "who uncovers a conspiracy",
    "facing one last chance",
    "across three continents",
    "as the city sleeps",
    "against impossible odds",
    "in a world without music",
    "over a single summer",
    "while the past catches up",
)

DAY_MS = 86_400_000
GENRE_WEIGHT = 0.9
"""Weight of the primary genre's (unit) direction in a title's vector."""
SECONDARY_GENRE_WEIGHT = 0.4
"""Weight of the secondary genre's direction."""
CREATOR_STYLE_SCALE = 0.22
"""Per-dimension standard deviation of a creator's style vector."""
THEME_SCALE = 0.15
"""Per-dimension standard deviation of a synopsis subject's theme vector."""
IDIOSYNCRATIC_SCALE = 0.15
"""Per-dimension standard deviation of a title's own part (not readable from its content)."""


@dataclass(frozen=True)
class Catalog:
    """Columns of the catalog (one row per title, in arrival order after the initial titles)."""

    content_ids: list[str]
    titles: list[str]
    content_type: np.ndarray
    """Index into :data:`CONTENT_TYPES`."""
    primary_genre: np.ndarray
    """Index into :data:`GENRES`."""
    secondary_genre: np.ndarray
    """Index into :data:`GENRES`, -1 when none."""
    creator: np.ndarray
    """Creator number; the id is ``creator_ids[creator]``."""
    creator_ids: list[str]
    duration_s: np.ndarray
    release_ms: np.ndarray
    arrival_ms: np.ndarray
    synopses: list[str]
    vectors: np.ndarray
    """Latent vectors, shape (items, dimensions)."""
    bias: np.ndarray
    """Intrinsic appeal, added to the affinity logit."""
    popularity: np.ndarray
    """Weights of the popularity-based rows (known to the platform)."""
    initial_count: int
    """Titles available from the start; later ones arrive during the simulation."""

    def __len__(self) -> int:
        return len(self.content_ids)

    @cached_property
    def popularity_cumsum(self) -> np.ndarray:
        """Cumulative popularity in catalog order (popularity-weighted draws among a prefix)."""
        return np.cumsum(self.popularity)

    def available(self, at_ms: np.ndarray) -> np.ndarray:
        """Number of titles available at each time (a catalog prefix)."""
        late = self.arrival_ms[self.initial_count :]
        return self.initial_count + np.searchsorted(late, at_ms, side="right")


def content_id(index: int) -> str:
    """The id of the title at ``index`` (0-based): ``c000001`` for index 0."""
    return f"c{index + 1:06d}"


def genre_directions(rng: np.random.Generator, dimensions: int) -> np.ndarray:
    """Unit directions of the genres in the taste space, shape (genres, dimensions)."""
    raw = rng.normal(size=(len(GENRES), dimensions))
    return raw / np.linalg.norm(raw, axis=1, keepdims=True)


def _durations(rng: np.random.Generator, types: np.ndarray) -> np.ndarray:
    n = len(types)
    film = np.clip(rng.normal(6300, 1200, n), 4800, 10800)
    episode = rng.choice(np.array([1320.0, 2640.0, 3300.0]), n) + rng.normal(0, 120, n)
    track = rng.uniform(120, 360, n)
    podcast = rng.uniform(1200, 5400, n)
    return np.round(np.choose(types, [film, episode, track, podcast]), 1)


def build_catalog(
    rng: np.random.Generator,
    *,
    initial: int,
    new_per_day: int,
    days: int,
    start_ms: int,
    directions: np.ndarray,
) -> Catalog:
    """Generate the catalog: ``initial`` titles plus ``new_per_day`` arriving each day.

    Args:
        rng: The random generator (the catalog is a pure function of its state).
        initial: Titles available from the start.
        new_per_day: Titles arriving each simulated day, at uniform times within the day.
        days: Simulated days.
        start_ms: Simulation start (ms since the epoch).
        directions: Genre directions from :func:`genre_directions`.
    """
    n = initial + new_per_day * days
    dims = directions.shape[1]
    types = rng.choice(len(CONTENT_TYPES), n, p=np.array(CONTENT_TYPE_WEIGHTS))
    primary = np.empty(n, dtype=np.int64)
    secondary = np.full(n, -1, dtype=np.int64)
    has_secondary = rng.random(n) < 0.35
    for t, name in enumerate(CONTENT_TYPES):
        rows = np.flatnonzero(types == t)
        codes = np.array([GENRES.index(g) for g in _GENRES_BY_TYPE[name]])
        primary[rows] = rng.choice(codes, len(rows))
        second = rng.choice(codes, len(rows))
        keep = has_secondary[rows] & (second != primary[rows])
        secondary[rows[keep]] = second[keep]
    vectors = GENRE_WEIGHT * directions[primary] + rng.normal(0, IDIOSYNCRATIC_SCALE, (n, dims))
    with_second = secondary >= 0
    vectors[with_second] += SECONDARY_GENRE_WEIGHT * directions[secondary[with_second]]
    bias = rng.normal(-2.2, 0.5, n)
    popularity = np.exp(1.5 * (bias - bias.max()))

    creators = max(10, n // 6)
    creator_weights = 1.0 / np.arange(1, creators + 1) ** 0.8
    creator = rng.choice(creators, n, p=creator_weights / creator_weights.sum())

    release = start_ms - rng.integers(DAY_MS, 5 * 365 * DAY_MS, n)
    arrival = release.copy()
    if n > initial:
        day = np.repeat(np.arange(days), new_per_day)
        arrived = start_ms + day * DAY_MS + rng.integers(0, DAY_MS, n - initial)
        arrived.sort()
        release[initial:] = arrived
        arrival[initial:] = arrived

    adjective = rng.integers(0, len(_ADJECTIVES), n)
    noun = rng.integers(0, len(_NOUNS), n)
    subject = rng.integers(0, len(_SUBJECTS), n)
    twist = rng.integers(0, len(_TWISTS), n)
    # creator styles and subject themes from a child generator: the draws of `rng` (and so of
    # everything generated after the catalog) stay where they were
    styles = rng.spawn(1)[0]
    vectors += styles.normal(0, CREATOR_STYLE_SCALE, (creators, dims))[creator]
    vectors += styles.normal(0, THEME_SCALE, (len(_SUBJECTS), dims))[subject]
    titles = [f"The {_ADJECTIVES[a]} {_NOUNS[b]}" for a, b in zip(adjective.tolist(), noun.tolist(), strict=True)]
    synopses = [
        f"A {GENRES[g].replace('_', ' ')} {CONTENT_TYPES[t].replace('_', ' ')} about {_SUBJECTS[s]} {_TWISTS[w]}."
        for g, t, s, w in zip(primary.tolist(), types.tolist(), subject.tolist(), twist.tolist(), strict=True)
    ]
    return Catalog(
        content_ids=[content_id(i) for i in range(n)],
        titles=titles,
        content_type=types,
        primary_genre=primary,
        secondary_genre=secondary,
        creator=creator,
        creator_ids=[f"cr{i + 1:05d}" for i in range(creators)],
        duration_s=_durations(rng, types),
        release_ms=release,
        arrival_ms=arrival,
        synopses=synopses,
        vectors=vectors,
        bias=bias,
        popularity=popularity,
        initial_count=initial,
    )
