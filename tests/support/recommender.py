"""A small trained model version on disk, for the serving tests and the serving bench."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from flywheel.config.simulator import SimulatorConfig
from flywheel.config.training import RankerConfig, RetrievalConfig, TrainingConfig
from flywheel.models.bundle import train_bundle
from flywheel.models.contract import CONTENT_DENSE, USER_DENSE, USER_VECTOR
from flywheel.models.dataset import prepare_window
from flywheel.serving.features import StaticFeatures, UserFeatures
from flywheel.simulator.frames import simulate_window

TINY_TRAINING = TrainingConfig(
    retrieval=RetrievalConfig(epochs=2, history_length=10, batch_size=128, candidates=50),
    ranker=RankerConfig(epochs=1, batch_size=256),
    eval_k=(5, 10),
)


def write_bundle(
    folder: Path,
    *,
    seed: int = 11,
    n_users: int = 80,
    n_items: int = 60,
    catalog_size: int = 0,
    mixed: bool = False,
) -> tuple[Path, pd.DataFrame]:
    """Train a tiny bundle on a simulated window and save it with its catalog; returns (folder, window).

    With ``catalog_size`` the catalog is grown to that many titles first (see :func:`grow_catalog`,
    ``mixed`` too).
    """
    world = simulate_window(
        SimulatorConfig(users=n_users, items=n_items, days=3, new_items_per_day=3, seed=seed, sessions_per_user_day=1.5)
    )
    catalog = grow_catalog(world.catalog, catalog_size, seed=seed, mixed=mixed) if catalog_size else world.catalog
    frame = prepare_window(world.frame, catalog, history_length=10)
    config = TINY_TRAINING.model_copy(update={"seed": seed})
    bundle = train_bundle(frame, catalog, config)
    bundle.save(folder)
    catalog.to_parquet(folder / "catalog.parquet")
    return folder, frame


def static_features(frame: pd.DataFrame) -> StaticFeatures:
    """In-memory features: each user's and title's latest row of the window."""
    latest = frame.sort_values("event_timestamp", kind="stable")
    users: dict[str, UserFeatures] = {}
    for row in latest.groupby("user_id").tail(1).itertuples(index=False):
        record = row._asdict()
        users[str(record["user_id"])] = UserFeatures(
            {name: float(record[name]) for name in USER_DENSE},
            tuple(float(v) for v in record[USER_VECTOR]),
            str(record["device_type"]),
            True,
        )
    content = {
        str(cid): [float(v) for v in values]
        for cid, values in latest.groupby("content_id").tail(1).set_index("content_id")[list(CONTENT_DENSE)].iterrows()
    }
    vector_dim = len(next(iter(users.values())).genre_affinity) if users else 0
    return StaticFeatures.from_tables(users, content, vector_dim=vector_dim)


def grow_catalog(catalog: pd.DataFrame, size: int, *, seed: int = 0, mixed: bool = False) -> pd.DataFrame:
    """The catalog grown to ``size`` titles under new ids (new titles: cold-start content).

    By default the new titles are copies of existing rows (their scores tie with the originals').
    ``mixed``: each new title takes its genres, its creator and its type from three random titles
    and a synopsis of 12 words drawn from all the synopses, so the new titles' embeddings spread
    as a real catalog's do (a catalog of copies holds as many distinct embeddings as titles it copies).
    """
    rng = np.random.default_rng(seed)
    extra = size - len(catalog)
    if extra <= 0:
        return catalog.reset_index(drop=True)
    copies = catalog.iloc[rng.integers(0, len(catalog), extra)].reset_index(drop=True)
    copies["content_id"] = [f"bench_{i:06d}" for i in range(extra)]
    if mixed:
        for columns in (["genres", "primary_genre"], ["creator_id"], ["content_type", "duration_seconds"]):
            donors = catalog.iloc[rng.integers(0, len(catalog), extra)].reset_index(drop=True)
            for column in columns:
                copies[column] = donors[column].to_numpy()
        words = np.asarray(" ".join(catalog["synopsis"].astype(str)).split(), dtype=object)
        drawn = words[rng.integers(0, len(words), (extra, 12))]
        copies["synopsis"] = [" ".join(row) for row in drawn]
    return pd.concat([catalog, copies], ignore_index=True)
