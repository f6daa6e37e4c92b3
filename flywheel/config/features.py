"""Configuration of the feature platform (owned by flywheel.features)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from flywheel.config.base import Section
from flywheel.simulator.catalog import GENRES

#: The genre vocabulary of the genre vectors: the platform catalog's genres (video, music,
#: podcasts), as the simulator generates them; genres outside it count in a last "other" slot.
DEFAULT_GENRES: tuple[str, ...] = GENRES


class FeaturesConfig(Section):
    """The feature platform: Feast repo, batch backfill, training sets, online reads."""

    repo_path: Path = Path("feature_repo")
    """The Feast repository (feature_store.yaml and the definitions split by entity). A relative
    path that does not exist under the working directory is taken relative to the Flywheel
    installation (the checkout the package is installed from), so commands work from any folder."""
    data_dir: Path = Path(".flywheel/features")
    """Where the offline parquet files, the registry and the SQLite online store live."""
    offline_store: Literal["duckdb"] = "duckdb"
    """Offline store engine over the parquet files (duckdb: correct point-in-time joins)."""
    online_store: Literal["sqlite", "redis"] = "sqlite"
    """`sqlite` (embedded default) or `redis`."""
    redis_url: str = "127.0.0.1:6379"
    """Redis connection string (host:port[,db=N][,password=...]) when online_store is redis."""
    spark_master: str = "local[*]"
    """Spark master URL of the batch job (`local[*]` here, `k8s://...` on a cluster)."""
    shuffle_partitions: int = Field(default=4, ge=1)
    """spark.sql.shuffle.partitions of the batch job."""
    session_gap_minutes: float = Field(default=30.0, gt=0)
    """Inactivity that closes a session."""
    short_window_days: int = Field(default=7, ge=1)
    """The short trailing window (the `_7d` features)."""
    long_window_days: int = Field(default=30, ge=1)
    """The long trailing window (the `_30d` features, affinities, completion, rating)."""
    skip_threshold_seconds: float = Field(default=30.0, gt=0)
    """A play stopped before this playhead position counts as a skip."""
    label_window_minutes: float = Field(default=240.0, gt=0)
    """How long after an impression a click, watch, like or add-to-list is credited to it."""
    genres: tuple[str, ...] = DEFAULT_GENRES
    """Genre vocabulary of the genre vectors (an `other` slot is appended)."""
    catalog_path: Path | None = None
    """Parquet of the catalog (content_id, genres, creator_id, duration_seconds, release_ts)."""
    users_path: Path | None = None
    """Parquet of the users (user_id, tier, signup_ts)."""
    stale_after_hours: float = Field(default=36.0, gt=0)
    """A view whose newest row is older than this is reported stale."""

    @field_validator("repo_path")
    @classmethod
    def _installed_repo(cls, path: Path) -> Path:
        return feature_repo_location(path)


def feature_repo_location(path: Path, *, cwd: Path | None = None) -> Path:
    """``path`` itself when absolute or present under ``cwd`` (the working directory), else the
    same relative path under the folder that holds the ``flywheel`` package, when it is there."""
    path = Path(path)
    if path.is_absolute() or (Path(cwd or Path.cwd()) / path).exists():
        return path
    installed = Path(__file__).resolve().parents[2] / path
    return installed if installed.exists() else path
