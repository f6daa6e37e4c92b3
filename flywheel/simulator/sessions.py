"""User behaviour in sessions, vectorised over a batch of sessions.

A session may start with a search (a search event, then a row of results) and then looks at
home-page rows, each with ``items_per_row`` positions. The logging policy fills a row by
drawing a candidate pool (uniform, popularity-weighted or the newest arrivals, depending on
the row's algorithm), scoring it (a noisy estimate of affinity for personalised rows and
search, popularity for trending rows, flat for new arrivals) and ranking it by Plackett-Luce
sampling (Gumbel top-k). ``context.propensity`` is the Plackett-Luce probability of the item
shown at that position given the pool and the items above it.

Clicks follow the position-based model: P(click) = examination(row, position) x
max_click_probability x true affinity x (1 + experiment click lift), with
examination = row_decay ** row x (1 + position) ** -position_bias. A click starts playback
with ``play_after_click``; the watch fraction is Beta-distributed with a mean that grows with
the true affinity (times 1 + the watch lift); at 95 % or more the playback completes. Likes,
saves, shares and add-to-list follow playback with probabilities that grow with affinity and
the fraction watched. Bots look at every row, click 30 % of what they see regardless of
position or taste, and barely watch.

Time runs forward inside a session: each row comes after a pause and after the playbacks
started from the previous rows; clicks in a row come after the playbacks of the clicks
before them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from flywheel.config.simulator import SimulatorConfig
from flywheel.events.columns import ALGORITHMS, CODE, EventColumns
from flywheel.simulator.catalog import GENRES, Catalog
from flywheel.simulator.ground_truth import WATCH_CONCENTRATION, watch_mean

SEARCH_BOOST = 3.0
"""Logit bonus of the query's genre among search results."""
POLICY_NOISE = 0.7
"""Standard deviation of the personalised policy's error on the affinity logit."""
COMPLETION_FRACTION = 0.95
BOT_CLICK_PROBABILITY = 0.3
#: A few query texts per genre; the query of a search is one of its genre's texts.
QUERY_TEMPLATES: tuple[str, ...] = ("{g}", "best {g}", "new {g}", "{g} for tonight")
QUERIES: tuple[str, ...] = tuple(t.format(g=g.replace("_", " ")) for g in GENRES for t in QUERY_TEMPLATES)
SlateOrder = Literal["policy", "random", "newest_first"]
"""How a row is ordered: by the logging policy (the platform), uniformly at random (a fair log:
the pool is uniform and the order random), or newest title first with jitter (position then
correlates with recency, which has no effect on the users: a log with a known bias)."""
NEWEST_FIRST_JITTER = 2.0
"""Standard deviation, in positions, of the noise on the newest-first order."""


@dataclass(frozen=True)
class SessionBatch:
    """Sessions to simulate, one entry per session (sorted by start)."""

    user: np.ndarray
    start_ms: np.ndarray
    device: np.ndarray
    key: np.ndarray
    """uint64 session key; the session id is its hex form."""
    taste: np.ndarray
    """The user's taste at the session start (drift applied), shape (sessions, dims)."""
    bot: np.ndarray
    experiment: np.ndarray
    """Index of the experiment written to the context, -1 none."""
    variant: np.ndarray
    click_multiplier: np.ndarray
    watch_multiplier: np.ndarray


def examination_probability(
    row: np.ndarray | int, position: np.ndarray, *, row_decay: float, position_bias: float
) -> np.ndarray:
    """P(the user looks at a slot) in the position-based model: ``row_decay ** row x (1 + position) ** -bias``.

    Rows and positions count from 0; the arrays broadcast.
    """
    return np.asarray(row_decay**row * (1.0 + np.asarray(position)) ** -position_bias)


def click_probability(examination: np.ndarray, affinity: np.ndarray, *, max_click_probability: float) -> np.ndarray:
    """P(click) of a human user: examination x ``max_click_probability`` x true affinity."""
    return examination * max_click_probability * affinity


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _segment_exclusive_cumsum(values: np.ndarray, segment: np.ndarray, segments: int) -> np.ndarray:
    """Per element, the sum of the earlier elements of its segment (elements sorted by segment)."""
    inclusive = np.cumsum(values)
    exclusive = inclusive - values
    first = np.searchsorted(segment, np.arange(segments))
    base = np.zeros(segments)
    has = first < len(values)
    base[has] = exclusive[first[has]]
    return exclusive - base[segment]


def _draw_pool(
    rng: np.random.Generator, catalog: Catalog, algorithm: np.ndarray, available: np.ndarray, size: int, recent: int
) -> np.ndarray:
    """Candidate titles per row: uniform, popularity-weighted (trending) or among the newest."""
    u = rng.random((len(algorithm), size))
    pool = np.floor(u * available[:, None]).astype(np.int64)
    trending = np.flatnonzero(algorithm == ALGORITHMS.index("trending"))
    cumulative = catalog.popularity_cumsum
    limit = cumulative[available[trending] - 1][:, None]
    pool[trending] = np.searchsorted(cumulative, u[trending] * limit, side="right")
    new = np.flatnonzero(algorithm == ALGORITHMS.index("new_arrivals"))
    window = np.minimum(recent, available[new])[:, None]
    pool[new] = available[new][:, None] - 1 - np.floor(u[new] * window).astype(np.int64)
    return np.minimum(pool, available[:, None] - 1)


def simulate_sessions(
    rng: np.random.Generator,
    batch: SessionBatch,
    catalog: Catalog,
    cfg: SimulatorConfig,
    *,
    genre_axes: np.ndarray,
    order: SlateOrder = "policy",
) -> EventColumns:
    """Every event of a batch of sessions, in columns (not sorted by time).

    Args:
        rng: Random generator of this batch.
        batch: The sessions.
        catalog: The catalog.
        cfg: The simulator configuration (behaviour knobs).
        genre_axes: How users perceive genres, from :func:`genre_axes` (picks search queries).
        order: How rows are ordered (:data:`SlateOrder`); only ``policy`` is the platform's
            traffic, the others make logs with a known (or no) exposure bias for tests.
    """
    sessions = len(batch.user)
    slots = cfg.items_per_row
    pool_size = 3 * slots
    bot = batch.bot

    # --- rows: an optional search row first, then home rows -----------------------------
    home_rows = np.minimum(1 + rng.poisson(cfg.rows_per_session - 1, sessions), cfg.max_rows)
    home_rows[bot] = cfg.max_rows
    searches = rng.random(sessions) < np.where(bot, 0.5, cfg.search_rate)
    per_session = home_rows + searches
    row_session = np.repeat(np.arange(sessions), per_session)
    row_first = np.concatenate([[0], np.cumsum(per_session)[:-1]])
    row_in_session = np.arange(len(row_session)) - row_first[row_session]
    is_search = searches[row_session] & (row_in_session == 0)
    home_row = row_in_session - searches[row_session]
    row_number = np.where(is_search, 0, home_row)
    rows = len(row_session)

    algorithm = rng.choice(3, rows, p=[0.5, 0.3, 0.2])
    algorithm[home_row == 0] = ALGORITHMS.index("personalized")
    algorithm[is_search] = ALGORITHMS.index("search")
    if order != "policy":  # uniform pools, no policy: the order alone decides the exposure
        algorithm[:] = ALGORITHMS.index("new_arrivals") if order == "random" else ALGORITHMS.index("personalized")
        recent_pool = False
    else:
        recent_pool = True
    available = catalog.available(batch.start_ms)[row_session]
    recent = max(pool_size, 7 * cfg.new_items_per_day)
    drawn_as = algorithm if recent_pool else np.zeros_like(algorithm)  # 0: personalized = a uniform pool
    pool = np.sort(_draw_pool(rng, catalog, drawn_as, available, pool_size, recent), axis=1)

    taste = batch.taste[row_session]
    affinity_logit = np.einsum("rd,rpd->rp", taste, catalog.vectors[pool]) + catalog.bias[pool]
    query_genre = np.argmax(batch.taste @ genre_axes + rng.gumbel(size=(sessions, len(GENRES))), axis=1)
    policy = affinity_logit + rng.normal(0, POLICY_NOISE, affinity_logit.shape)
    policy = np.where(
        (is_search[:, None]) & (catalog.primary_genre[pool] == query_genre[row_session][:, None]),
        policy + SEARCH_BOOST,
        policy,
    )
    if order == "newest_first":
        policy = catalog.arrival_ms[pool] / 86_400_000.0
    logits = np.where(
        (algorithm == ALGORITHMS.index("trending"))[:, None],
        0.5 * np.log(catalog.popularity[pool]),
        np.where((algorithm == ALGORITHMS.index("new_arrivals"))[:, None], 0.0, policy),
    )
    duplicate = np.zeros_like(pool, dtype=bool)
    duplicate[:, 1:] = pool[:, 1:] == pool[:, :-1]
    logits[duplicate] = -np.inf

    # Plackett-Luce ranking by Gumbel top-k, with the propensity of each shown position
    noise = rng.gumbel(size=logits.shape)
    if order == "newest_first":  # the newest titles of the pool, shown newest first with jitter
        newest = np.argsort(-logits, axis=1, kind="stable")[:, :slots]
        jitter = np.arange(slots)[None, :] + rng.normal(0, NEWEST_FIRST_JITTER, newest.shape)
        ranked = np.take_along_axis(newest, np.argsort(jitter, axis=1), axis=1)
    else:
        ranked = np.argsort(-(logits + noise), axis=1, kind="stable")[:, :slots]
    shown_logit = np.take_along_axis(logits, ranked, axis=1)
    shown = np.take_along_axis(pool, ranked, axis=1)
    weight = np.exp(logits - logits.max(axis=1, keepdims=True))
    shown_weight = np.take_along_axis(weight, ranked, axis=1)
    remaining = weight.sum(axis=1, keepdims=True) - np.cumsum(shown_weight, axis=1) + shown_weight
    with np.errstate(invalid="ignore", divide="ignore"):  # slots past a tiny catalog's end: masked below
        propensity = np.clip(shown_weight / remaining, 1e-9, 1.0)
    valid = np.isfinite(shown_logit)
    affinity = _sigmoid(np.take_along_axis(affinity_logit, ranked, axis=1))

    # --- clicks (position-based model) ------------------------------------------------------
    position = np.broadcast_to(np.arange(slots), shown.shape)
    examination = examination_probability(
        row_number[:, None], position, row_decay=cfg.row_decay, position_bias=cfg.position_bias
    )
    click_p = click_probability(examination, affinity, max_click_probability=cfg.max_click_probability)
    click_p = click_p * batch.click_multiplier[row_session][:, None]
    click_p = np.where(bot[row_session][:, None], BOT_CLICK_PROBABILITY, click_p)
    clicked = (rng.random(shown.shape) < np.clip(click_p, 0.0, 1.0)) & valid

    click_row, click_pos = np.nonzero(clicked)
    clicks = len(click_row)
    click_session = row_session[click_row]
    click_item = shown[click_row, click_pos]
    click_aff = affinity[click_row, click_pos]
    click_bot = bot[click_session]
    plays = rng.random(clicks) < np.where(click_bot, 0.9, cfg.play_after_click)
    mean = watch_mean(click_aff, batch.watch_multiplier[click_session])
    fraction = rng.beta(WATCH_CONCENTRATION * mean, WATCH_CONCENTRATION * (1 - mean))
    fraction = np.where(click_bot, rng.uniform(0.001, 0.03, clicks), fraction)
    completed = fraction >= COMPLETION_FRACTION
    fraction = np.where(completed, 1.0, fraction)
    duration = catalog.duration_s[click_item]
    watch = np.round(fraction * duration, 1)

    # --- time ----------------------------------------------------------------------------------
    busy = np.where(plays, 0.8 + watch + 10.0, 2.0)
    prior_in_row = _segment_exclusive_cumsum(busy, click_row, rows)
    row_busy = np.bincount(click_row, weights=busy, minlength=rows)
    gap = np.where(bot[row_session], 0.3, 2.0 + rng.exponential(6.0, rows))
    gap = np.where(is_search, gap + 4.0, gap)
    row_offset = _segment_exclusive_cumsum(gap + row_busy, row_session, sessions) + gap
    row_ms = batch.start_ms[row_session] + (row_offset * 1000).astype(np.int64)
    click_ms = row_ms[click_row] + ((1.0 + 0.4 * click_pos + prior_in_row) * 1000).astype(np.int64)
    start_ms = click_ms + 800
    end_ms = start_ms + (watch * 1000).astype(np.int64)

    # --- events ------------------------------------------------------------------------------
    parts: list[EventColumns] = []
    common_rows = _session_fields(batch, row_session)
    flat_rows = np.repeat(np.arange(rows), slots)
    mask = valid.ravel()
    flat_rows = flat_rows[mask]
    parts.append(
        EventColumns.build(
            np.full(len(flat_rows), CODE["impression"]),
            row_ms[flat_rows] + 50 * position.ravel()[mask],
            batch.user[row_session[flat_rows]],
            item=shown.ravel()[mask],
            page=is_search[flat_rows].astype(np.int8),
            row=row_number[flat_rows],
            position=position.ravel()[mask],
            algorithm=algorithm[flat_rows],
            propensity=propensity.ravel()[mask],
            **{k: v[flat_rows] for k, v in common_rows.items()},
        )
    )
    scroll = np.flatnonzero(~is_search & (home_row > 0))
    parts.append(
        EventColumns.build(
            np.full(len(scroll), CODE["scroll"]),
            row_ms[scroll] - 500,
            batch.user[row_session[scroll]],
            page=np.zeros(len(scroll)),
            row=row_number[scroll],
            **{k: v[scroll] for k, v in common_rows.items()},
        )
    )
    search = np.flatnonzero(is_search)
    search_session = row_session[search]
    parts.append(
        EventColumns.build(
            np.full(len(search), CODE["search"]),
            row_ms[search] - 3000,
            batch.user[search_session],
            page=np.ones(len(search)),
            query=query_genre[search_session] * len(QUERY_TEMPLATES)
            + rng.integers(0, len(QUERY_TEMPLATES), len(search)),
            **{k: v[search] for k, v in common_rows.items()},
        )
    )
    click_fields = {k: v[click_row] for k, v in common_rows.items()}
    click_context = {
        "item": click_item,
        "page": is_search[click_row].astype(np.int8),
        "row": row_number[click_row],
        "position": click_pos,
        "algorithm": algorithm[click_row],
    }
    parts.append(
        EventColumns.build(
            np.full(clicks, CODE["click"]),
            click_ms,
            batch.user[click_session],
            propensity=propensity[click_row, click_pos],
            **click_context,
            **click_fields,
        )
    )
    p = np.flatnonzero(plays)
    play_fields = {k: v[p] for k, v in click_fields.items()}
    play_context = {k: v[p] for k, v in click_context.items()}
    parts.append(
        EventColumns.build(
            np.full(len(p), CODE["playback.started"]),
            start_ms[p],
            batch.user[click_session[p]],
            position_s=np.zeros(len(p)),
            duration_s=duration[p],
            **play_context,
            **play_fields,
        )
    )
    parts.append(
        EventColumns.build(
            np.where(completed[p], CODE["playback.completed"], CODE["playback.stopped"]),
            end_ms[p],
            batch.user[click_session[p]],
            watch_s=watch[p],
            position_s=watch[p],
            duration_s=duration[p],
            **play_context,
            **play_fields,
        )
    )
    aff, frac = click_aff[p], fraction[p]
    for offset, (kind, prob) in enumerate(
        (
            ("like", 0.3 * aff * frac),
            ("save", 0.05 * aff),
            ("add_to_list", 0.08 * aff * (1 - frac)),
            ("share", 0.02 * aff * frac),
        )
    ):
        hit = np.flatnonzero(rng.random(len(p)) < prob)
        parts.append(
            EventColumns.build(
                np.full(len(hit), CODE[kind]),
                end_ms[p[hit]] + 2000 * (offset + 1),
                batch.user[click_session[p[hit]]],
                **{k: v[hit] for k, v in play_context.items()},
                **{k: v[hit] for k, v in play_fields.items()},
            )
        )
    return EventColumns.concat(parts)


def _session_fields(batch: SessionBatch, index: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "session": batch.key[index],
        "device": batch.device[index],
        "experiment": batch.experiment[index],
        "variant": batch.variant[index],
    }


def genre_axes(catalog: Catalog) -> np.ndarray:
    """Mean vector of each genre's titles, shape (dims, genres): how users perceive genres."""
    dims = catalog.vectors.shape[1]
    sums = np.zeros((len(GENRES), dims))
    np.add.at(sums, catalog.primary_genre, catalog.vectors)
    counts = np.maximum(np.bincount(catalog.primary_genre, minlength=len(GENRES)), 1)
    return (sums / counts[:, None]).T
