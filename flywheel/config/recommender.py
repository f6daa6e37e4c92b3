"""Configuration of the evaluation protocol and of the candidate sources (owned by flywheel.models)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from flywheel.config.base import Section


class EvaluationConfig(Section):
    """How a window is split and what counts as relevant, for any data source."""

    split: Literal["time_cut", "per_user"] = "time_cut"
    """`time_cut`: one global cut, the latest ``holdout_fraction`` of the window's time span is the
    holdout (what production sees: train on the past, serve the future); `per_user`: each user's
    last ``per_user_holdout`` interactions are the holdout (the usual protocol of offline
    recommender benchmarks; users with fewer than twice as many stay in training only)."""
    per_user_holdout: int = Field(default=5, ge=1)
    """Interactions per user held out by the `per_user` split."""
    relevance: Literal["auto", "any", "like", "watch_50"] = "auto"
    """What makes a held-out item relevant: `any` interaction (a play, click, like, add to list),
    `like` (a like; an import writes one for a rating at or above its ``--like-threshold``),
    `watch_50` (watched past half); `auto` is `watch_50` where the window logs impressions and
    watch times, else `any`."""
    min_holdout_users: int = Field(default=10, ge=1)
    """A holdout with fewer users that have a relevant item is an error naming the numbers (not NaN)."""
    exclude_seen: bool = True
    """The top-K function leaves out what a user interacted with in training (a catalog of
    films rarely sees a second play; set false for music, where repeats are the norm)."""


class CandidatesConfig(Section):
    """The candidate sources merged before the ranker, and how the ranker is trained on them."""

    two_tower: int = Field(default=100, ge=0)
    """Candidates from the two-tower retrieval (0: off)."""
    item_to_item: int = Field(default=100, ge=0)
    """Candidates from the item-to-item model (EASE, closed form) over the user's history (0: off)."""
    popular_now: int = Field(default=50, ge=0)
    """Candidates among the most played titles of the last ``popular_days`` (0: off)."""
    new_releases: int = Field(default=20, ge=0)
    """Candidates among the titles released in the last ``new_release_days``, most played first (0: off)."""
    ease_lambda: float = Field(default=200.0, gt=0)
    """L2 weight of EASE (Steck 2019); larger for sparser data."""
    ease_min_support: int = Field(default=2, ge=1)
    """Titles with fewer training interactions are left out of the EASE item-item matrix."""
    ease_max_items: int = Field(default=5000, ge=10)
    """Most titles in the EASE matrix (the most interacted); it is dense, items x items float32."""
    popular_days: float = Field(default=30.0, gt=0)
    """Window of the popular-now source and the ``content_total_plays`` ranker feature."""
    popular_min_interactions: int = Field(default=0, ge=0)
    """Fewest interactions the popular-now window counts: where the last ``popular_days`` hold
    fewer (sparse or historical data), the window reaches back to the last this many."""
    new_release_days: float = Field(default=180.0, gt=0)
    """A title released within this many days before the query is a new release."""
    index: Literal["auto", "exact", "ivf"] = "auto"
    """How the two-tower source searches the catalog: `exact` scores every title (one matrix-vector
    product, recall 1); `ivf` faiss's inverted-file index (lists of about ``ivf_list_size`` titles;
    a query scores the titles of its ``ivf_probe`` nearest lists and keeps its ``ivf_depth`` best,
    every other title is left out of the source); `auto` is `ivf` from ``ivf_min_titles`` titles."""
    ivf_min_titles: int = Field(default=100_000, ge=1)
    """Catalog size from which `auto` uses the inverted-file index. Measured one query on one core
    (64 dimensions): exact 0.8-1.2 ms at 100k titles, 10.9 ms at 1M; the index 0.4-0.9 ms at both.
    Served at 100k titles (the serving bench's bundle, the two servers alternating three times,
    2026-12-03): the retrieval stage 1.5-1.9 ms with the index against 2.8-3.0 ms exact, at recall@100
    0.977 of the exact candidates for that bundle's towers. Below this size the exact product keeps
    recall 1; ``index: exact`` keeps it at any size."""
    ivf_list_size: int = Field(default=256, ge=1)
    """Titles per list of the inverted-file index, on average (lists: catalog size / this)."""
    ivf_probe: int = Field(default=48, ge=1)
    """Lists a query scores: more is closer to exact and slower."""
    ivf_depth: int = Field(default=400, ge=1)
    """Titles a query keeps from the lists it scores (at least ``two_tower``): the source's candidates
    are the best of them after the exclusions, its rank and z features are over them."""
    negatives_per_user: int = Field(default=60, ge=1)
    """Retrieved candidates without engagement kept per user for the ranker (sampled uniformly;
    the heads' bias is corrected by log(sampling rate) so the probabilities stay calibrated)."""
