"""A small end-to-end feature pipeline the integration tests share: log → backfill → Feast."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from flywheel.config.features import FeaturesConfig
from flywheel.events.local_log import LocalEventLog
from flywheel.features import formulas as f
from tests.unit.features.factory import CATALOG, HOUR, MIN, T0, USERS, event, scenario

REPO = Path(__file__).resolve().parents[3] / "feature_repo"
GENRES = ("comedy", "crime", "drama", "kids")


def catalog_frame() -> pd.DataFrame:
    """The test catalog in the simulator's shape (release_ts as timestamps)."""
    return pd.DataFrame(
        [
            {
                "content_id": m.content_id,
                "content_type": "movie",
                "genres": list(m.genres),
                "primary_genre": m.genres[0],
                "creator_id": m.creator_id,
                "duration_seconds": m.duration_seconds,
                "release_ts": pd.Timestamp(m.release_ts_ms, unit="ms", tz="UTC"),
                "synopsis": "",
            }
            for m in CATALOG.values()
        ]
    )


def users_frame() -> pd.DataFrame:
    """The test users in the simulator's shape."""
    return pd.DataFrame(
        [
            {
                "user_id": u.user_id,
                "tier": u.tier,
                "signup_ts": pd.Timestamp(u.signup_ts_ms, unit="ms", tz="UTC"),
                "household_id": "h1",
                "devices": ["tv"],
            }
            for u in USERS.values()
        ]
    )


def many_events(days: int = 12, seed: int = 3) -> list[dict[str, Any]]:
    """The scenario plus a few users browsing, playing and responding for ``days`` days."""
    rng = random.Random(seed)
    out = list(scenario())
    titles = [*CATALOG, "c000777"]  # c000777 is not in the catalog
    for day in range(days):
        for user in ("u000001", "u000002", "u000003"):
            ts = T0 + day * f.DAY_MS + rng.randrange(0, 20) * HOUR
            for slot in range(rng.randrange(1, 4)):
                content = rng.choice(titles)
                at = ts + slot * 40 * MIN
                out.append(event("impression", at, user=user, content=content, position=slot, propensity=0.5))
                if rng.random() < 0.6:
                    out.append(event("click", at + MIN, user=user, content=content))
                    out.append(
                        event(
                            "playback.started",
                            at + 2 * MIN,
                            user=user,
                            content=content,
                            device=rng.choice(["tv", "mobile"]),
                        )
                    )
                    watch = float(rng.choice([10, 200, 900, 2400]))
                    kind = "playback.completed" if watch >= 900 else "playback.stopped"
                    out.append(
                        event(
                            kind,
                            at + 2 * MIN + int(watch * 1000),
                            user=user,
                            content=content,
                            watch=watch,
                            position_s=watch,
                        )
                    )
                    if rng.random() < 0.3:
                        out.append(
                            event(
                                "like",
                                at + 3 * MIN + int(watch * 1000),
                                user=user,
                                content=content,
                                rating=float(rng.randrange(1, 6)),
                            )
                        )
                    if rng.random() < 0.2:
                        out.append(event("add_to_list", at + 4 * MIN + int(watch * 1000), user=user, content=content))
            if rng.random() < 0.5:
                out.append(event("search", ts + 5 * HOUR, user=user, content=None, query="q"))
    return out


def write_log(root: Path, events: list[dict[str, Any]], extra_raw: list[bytes] = ()) -> LocalEventLog:
    """A local log with the events (and raw, possibly invalid, payloads) in topic ``events``."""
    log = LocalEventLog(root, partitions=2)
    producer = log.producer("events")
    for e in events:
        producer.send(e["user_id"], orjson.dumps(e), e["timestamp_ms"])
    for raw in extra_raw:
        producer.send("u000001", raw, T0)
    producer.flush()
    return log


def features_config(tmp: Path, **overrides: Any) -> FeaturesConfig:
    """Feature settings for a test folder, the repo of this checkout and the test tables."""
    tmp.mkdir(parents=True, exist_ok=True)
    catalog, users = tmp / "catalog.parquet", tmp / "users.parquet"
    if not catalog.exists():
        catalog_frame().to_parquet(catalog)
        users_frame().to_parquet(users)
    settings: dict[str, Any] = {
        "repo_path": REPO,
        "data_dir": tmp / "features",
        "genres": GENRES,
        "catalog_path": catalog,
        "users_path": users,
        "shuffle_partitions": 2,
        "spark_master": "local[2]",
    }
    settings.update(overrides)
    return FeaturesConfig(**settings)
