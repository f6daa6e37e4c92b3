"""The library side of the pipeline steps that build the training set and train the models.

Each function takes plain paths and a :class:`TrainingConfig` and writes its outputs to the
paths given, so that a KFP component is a thin wrapper and the same code runs anywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch

from flywheel.config.training import TrainingConfig
from flywheel.models.bundle import ModelBundle, fit_feature_spec, with_blend
from flywheel.models.contract import ContractError, adapt_feature_platform, utc_time
from flywheel.models.dataset import prepare_window, split_window
from flywheel.models.encoding import FeatureSpec, encode_catalog
from flywheel.models.ranker import build_ranker
from flywheel.models.two_tower import TwoTower, pair_scores, train_two_tower


class DataError(ValueError):
    """An input table cannot be read or is unusable; the message says which and why."""


def read_table(uri: str, what: str) -> pd.DataFrame:
    """Read a parquet table (a local path or any fsspec URL pandas understands).

    Raises:
        DataError: The table is missing or corrupted.
    """
    if not uri:
        raise DataError(f"{what}: no path given")
    try:
        return pd.read_parquet(uri)
    except FileNotFoundError as exc:
        raise DataError(f"{what}: {uri} does not exist") from exc
    except Exception as exc:  # pyarrow raises several types for corrupted files
        raise DataError(f"{what}: {uri} is not a readable parquet table ({type(exc).__name__}: {exc})") from exc


def build_training_set(
    window_uri: str,
    catalog_uri: str,
    config: TrainingConfig,
    *,
    train_path: str | Path,
    holdout_path: str | Path,
    spec_path: str | Path,
) -> dict[str, Any]:
    """Check the window, add interest histories, split (``config.evaluation``), fit the feature spec.

    Returns:
        Row counts and the window bounds (``start``, ``cutoff``, ``end``).

    Raises:
        DataError: The window or the catalog cannot be read.
        ContractError: A required column is missing (named in the message).
        SplitError: The split leaves too few users to evaluate (the message gives the numbers).
    """
    window, _ = adapt_feature_platform(read_table(window_uri, "training window"))
    catalog = read_table(catalog_uri, "catalog")
    prepared = prepare_window(window, catalog, history_length=config.retrieval.history_length)
    split = split_window(prepared, config.holdout_fraction, config.evaluation)
    split.train.to_parquet(train_path)
    split.holdout.to_parquet(holdout_path)
    fit_feature_spec(split.train, catalog, config).save(spec_path)
    ts = prepared["event_timestamp"]
    return {
        "rows": len(prepared),
        "train_rows": len(split.train),
        "holdout_rows": len(split.holdout),
        "start": str(ts.min()),
        "cutoff": str(split.cutoff),
        "end": str(ts.max()),
    }


def train_retrieval_step(
    train_path: str | Path, spec_path: str | Path, catalog_uri: str, config: TrainingConfig, model_path: str | Path
) -> dict[str, Any]:
    """Train the two towers and save their state dict to ``model_path``."""
    train = pd.read_parquet(train_path)
    spec = FeatureSpec.load(spec_path)
    catalog = read_table(catalog_uri, "catalog")
    model = train_two_tower(train, encode_catalog(catalog, spec), spec, config.retrieval, seed=config.seed)
    torch.save(model.state_dict(), model_path)
    return {"positives": int((train[config.retrieval.positive_label] > 0).sum())}


def train_ranker_step(
    train_path: str | Path,
    spec_path: str | Path,
    retrieval_path: str | Path,
    catalog_uri: str,
    config: TrainingConfig,
    model_path: str | Path,
) -> dict[str, Any]:
    """Train the multi-task ranker on the candidate sources' candidates and save it to ``model_path``
    (:func:`flywheel.models.stack.train_stacked_ranker`)."""
    from flywheel.models.stack import train_stacked_ranker

    train = pd.read_parquet(train_path)
    spec = FeatureSpec.load(spec_path)
    catalog = read_table(catalog_uri, "catalog")
    retrieval = TwoTower(spec, config.retrieval)
    retrieval.load_state_dict(torch.load(retrieval_path, weights_only=True))
    retrieval.eval()
    if config.ranker.use_retrieval_score:
        train = train.assign(retrieval_score=pair_scores(retrieval, train, spec, encode_catalog(catalog, spec)))
    model, info = train_stacked_ranker(train, catalog, spec, retrieval, config)
    # the weights and what training chose that the version keeps (see assemble_bundle)
    torch.save({"ranker": model.state_dict(), "source_blend": info.get("ranker.source_blend")}, model_path)
    return {"impressions": len(train), **info}


def assemble_bundle(
    spec_path: str | Path, retrieval_path: str | Path, ranker_path: str | Path, config: TrainingConfig
) -> ModelBundle:
    """A bundle from the artifacts of the training steps."""
    spec = FeatureSpec.load(spec_path)
    retrieval = TwoTower(spec, config.retrieval)
    retrieval.load_state_dict(torch.load(retrieval_path, weights_only=True))
    saved = torch.load(ranker_path, weights_only=True)
    ranker = build_ranker(spec, config.ranker)
    ranker.load_state_dict(saved["ranker"])
    retrieval.eval()
    ranker.eval()
    return ModelBundle(spec, retrieval, ranker, config.retrieval, with_blend(config.ranker, saved.get("source_blend")))


__all__ = [
    "ContractError",
    "DataError",
    "assemble_bundle",
    "build_training_set",
    "read_table",
    "train_ranker_step",
    "train_retrieval_step",
]


def _within(frame: pd.DataFrame, column: str, start: pd.Timestamp | None, end: pd.Timestamp | None) -> pd.DataFrame:
    """The rows of ``frame`` with ``start <= frame[column] < end`` (an open side when None).

    ``timestamp_ms`` columns hold ms since the epoch; others are datetimes.
    """
    if start is None and end is None:
        return frame
    stamps = pd.to_datetime(frame[column], unit="ms" if column == "timestamp_ms" else None, utc=True)
    keep = pd.Series(True, index=frame.index)
    if start is not None:
        keep &= stamps >= start
    if end is not None:
        keep &= stamps < end
    return frame[keep.to_numpy()]


def fetch_window(
    window_uri: str, platform_config_json: str, out_path: str | Path, *, start: str = "", end: str = ""
) -> dict[str, Any]:
    """The training window as a parquet file at ``out_path``, limited to ``[start, end)`` when given.

    With ``window_uri``, its bytes are copied unchanged when no bounds are given, or when the
    file cannot be read (a corrupted file reaches the data-quality gate, which reports it).
    Without, the window is built by the feature platform: labelled impressions joined
    point-in-time with the features through Feast (the same steps as ``flywheel features
    training-set``), from the backfilled events; ``events_end`` in the result is the newest
    event it saw (the reference of the freshness check when no end is given).

    Raises:
        DataError: The file does not exist, the feature platform has no backfilled events, or a
            bound is not an ISO time.
    """
    try:
        lower, upper = utc_time(start), utc_time(end)
    except ValueError as exc:
        raise DataError(f"training window: bound {start!r} / {end!r} is not an ISO time: {exc}") from exc
    bounds = {"start": lower.isoformat() if lower is not None else "", "end": upper.isoformat() if upper else ""}
    if window_uri:
        import fsspec

        try:
            with fsspec.open(window_uri, "rb") as src, open(out_path, "wb") as dst:
                dst.write(src.read())
        except FileNotFoundError as exc:
            raise DataError(f"training window: {window_uri} does not exist") from exc
        if lower is not None or upper is not None:
            try:
                frame = pd.read_parquet(out_path)
            except (OSError, ValueError):
                return {"source": window_uri, **bounds}  # unreadable: the gate says so
            if "event_timestamp" in frame.columns:
                _within(frame, "event_timestamp", lower, upper).to_parquet(out_path)
        return {"source": window_uri, **bounds}
    from flywheel.config.models import FlywheelConfig

    root = FlywheelConfig.model_validate_json(platform_config_json) if platform_config_json else FlywheelConfig()
    return {**feature_platform_window(root, out_path, start=lower, end=upper), **bounds}


def feature_platform_window(
    root: Any, out_path: str | Path, *, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None
) -> dict[str, Any]:
    """Build the window with the feature platform (Feast point-in-time join) into ``out_path``.

    Only examples in ``[start, end)`` are kept; features are still joined as of each example.
    """
    from flywheel.events.catalog import default_catalog_path
    from flywheel.features.backfill import staging_folder, vocabulary
    from flywheel.features.sources import load_catalog
    from flywheel.features.store import apply_repo, open_store
    from flywheel.features.training_set import build_training_set as platform_training_set
    from flywheel.features.training_set import label_impressions

    features = root.features
    truth = Path(root.simulator.ground_truth_dir)
    catalog_path = default_catalog_path(root)
    if features.catalog_path is None and catalog_path is not None:
        features = features.model_copy(update={"catalog_path": catalog_path})
    if features.users_path is None and (truth / "users.parquet").exists():
        features = features.model_copy(update={"users_path": truth / "users.parquet"})
    staged = staging_folder(features) / "events.parquet"
    if not staged.exists():
        raise DataError(f"feature platform: no backfilled events at {staged}: run `flywheel features backfill` first")
    events = pd.read_parquet(staged)
    catalog = load_catalog(features.catalog_path) if features.catalog_path else None
    durations = {} if catalog is None else dict(zip(catalog["content_id"], catalog["duration_seconds"], strict=True))
    example_event = "impression" if (events["event_type"] == "impression").any() else "playback.started"
    examples = label_impressions(
        events, durations, int(features.label_window_minutes * 60_000), example_event=example_event
    )
    examples = _within(examples, "timestamp_ms", start, end)
    seen = _within(events, "timestamp_ms", None, end)["timestamp_ms"]
    events_end = pd.to_datetime(seen.max(), unit="ms", utc=True) if len(seen) else None
    store = open_store(features)
    apply_repo(store, Path(features.repo_path))
    frame = platform_training_set(store, examples, vocabulary(features))
    frame.to_parquet(out_path)
    return {
        "source": "feature platform",
        "rows": len(frame),
        "example_event": example_event,
        "events_end": events_end.isoformat() if events_end is not None else "",
    }
