"""Business rules applied to a ranked candidate list: pure functions, no I/O.

Order of application in :func:`apply_rules`:

1. drop titles the user already watched (and anything the request excludes);
2. walk the remaining titles best first and keep a title unless its primary genre or its creator
   already fills its cap in the list; new releases are exempt from both caps, so they stay
   eligible whatever else ranks above them;
3. if the caps leave fewer than ``k`` titles, fill the list with the best capped titles (a short
   list is worse for the user than a repeated genre).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RuleLimits:
    """The caps of one request."""

    k: int
    max_per_genre: int
    max_per_creator: int


def drop_watched(items: Sequence[str], watched: Collection[str]) -> list[int]:
    """Positions of ``items`` that are not in ``watched``, in order."""
    return [i for i, item in enumerate(items) if item not in watched]


def apply_rules(
    items: Sequence[str],
    scores: Sequence[float],
    *,
    genres: Sequence[str],
    creators: Sequence[str],
    new_release: Sequence[bool],
    watched: Collection[str],
    limits: RuleLimits,
) -> list[int]:
    """The positions of ``items`` to return, best first, at most ``limits.k``.

    Args:
        items: Candidate titles.
        scores: Their ranking scores (higher is better).
        genres: Primary genre of each candidate ("" when it has none: never capped).
        creators: Creator of each candidate ("" when unknown: never capped).
        new_release: Whether each candidate is a new release (exempt from the caps).
        watched: Titles the user already watched or the request excludes.
        limits: k and the caps.

    Raises:
        ValueError: The sequences differ in length.
    """
    n = len(items)
    if not len(scores) == len(genres) == len(creators) == len(new_release) == n:
        raise ValueError("items, scores, genres, creators and new_release must have the same length")
    order = sorted(drop_watched(items, watched), key=lambda i: -scores[i])
    chosen: list[int] = []
    capped: list[int] = []
    per_genre: Counter[str] = Counter()
    per_creator: Counter[str] = Counter()
    for i in order:
        if len(chosen) == limits.k:
            break
        genre, creator = genres[i], creators[i]
        over = not new_release[i] and (
            (genre and per_genre[genre] >= limits.max_per_genre)
            or (creator and per_creator[creator] >= limits.max_per_creator)
        )
        if over:
            capped.append(i)
            continue
        chosen.append(i)
        per_genre[genre] += 1
        per_creator[creator] += 1
    if len(chosen) < limits.k:
        chosen += capped[: limits.k - len(chosen)]
        chosen.sort(key=lambda i: -scores[i])
    return chosen
