"""Cross features of a (user, title) pair, computed at training and at request time.

* ``user_has_watched_same_genre_7d``: the user watched, in the short window, a genre slot the title has;
* ``user_watched_same_creator``: the user started a title of the same creator in the long window;
* ``user_x_content_genre_overlap``: cosine of the user's genre affinity and the title's genre vector.

The scalar functions are the definition; :func:`cross_matrix` is the vectorized form the online
read path uses for up to hundreds of titles at once (a test pins one to the other).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from flywheel.features.formulas import cosine_similarity

CROSS_FEATURES: tuple[str, ...] = (
    "user_has_watched_same_genre_7d",
    "user_watched_same_creator",
    "user_x_content_genre_overlap",
)


def cross_features(user: Mapping[str, Any], content: Mapping[str, Any]) -> dict[str, float]:
    """Cross features of one user row and one content row (feature dicts as the store returns them)."""
    watched = user["user_genre_watch_hours_7d"]
    genres = content["content_genre_vector"]
    same_genre = any(w > 0 and g > 0 for w, g in zip(watched, genres, strict=True))
    creator = content["content_creator_id"]
    return {
        "user_has_watched_same_genre_7d": float(same_genre),
        "user_watched_same_creator": float(bool(creator) and creator in set(user["user_creators_watched_30d"])),
        "user_x_content_genre_overlap": cosine_similarity(user["user_genre_affinity_vector"], genres),
    }


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm (zero rows stay zero)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix, dtype=np.float64), where=norms > 0)


def cross_matrix(
    user_affinity: Sequence[float] | np.ndarray,
    user_watch_7d: Sequence[float] | np.ndarray,
    user_creator_mask: np.ndarray,
    content_unit_genres: np.ndarray,
    content_genres: np.ndarray,
    content_creator_codes: np.ndarray,
) -> np.ndarray:
    """The three cross features for many titles at once, as an ``(n, 3)`` float matrix.

    Args:
        user_affinity: The user's genre affinity vector (G).
        user_watch_7d: The user's genre watch hours of the short window (G).
        user_creator_mask: Boolean per creator code, True for creators the user watched; its last
            slot is for titles without a known creator and is always False.
        content_unit_genres: The titles' genre vectors scaled to unit length (n, G).
        content_genres: The titles' genre vectors (n, G).
        content_creator_codes: The titles' creator codes (n,), -1 for none.
    """
    affinity = np.asarray(user_affinity, dtype=np.float64)
    norm = float(np.sqrt(affinity @ affinity))
    out = np.empty((content_genres.shape[0], 3), dtype=np.float64)
    watched = (np.asarray(user_watch_7d) > 0).astype(np.float64)
    out[:, 0] = (content_genres @ watched) > 0
    out[:, 1] = user_creator_mask[content_creator_codes]
    if norm:
        np.matmul(content_unit_genres, affinity / norm, out=out[:, 2])
    else:
        out[:, 2] = 0.0
    return out
