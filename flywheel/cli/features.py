"""`flywheel features ...`: backfill, materialize, training sets, freshness (the feature platform)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from flywheel.cli.common import ConfigOption, console, fail, load
from flywheel.config.features import FeaturesConfig

if TYPE_CHECKING:
    from flywheel.config.models import FlywheelConfig

app = typer.Typer(help="Feature platform: backfill, materialize, training sets.", no_args_is_help=True)


def features_config(cfg: FlywheelConfig) -> FeaturesConfig:
    """The ``features`` section, with the default catalog (imported, else the simulator's ground truth) and users."""
    from flywheel.events.catalog import default_catalog_path

    section = cfg.features
    truth = Path(cfg.simulator.ground_truth_dir)
    updates: dict[str, Path] = {}
    catalog = default_catalog_path(cfg)
    if section.catalog_path is None and catalog is not None:
        updates["catalog_path"] = catalog
    if section.users_path is None and (truth / "users.parquet").exists():
        updates["users_path"] = truth / "users.parquet"
    return section.model_copy(update=updates) if updates else section


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True
    )


def _ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@app.command()
def backfill(
    catalog: Annotated[
        Path | None,
        typer.Option(help="Catalog parquet (default: features.catalog_path or the simulator's ground truth)"),
    ] = None,
    users: Annotated[
        Path | None, typer.Option(help="Users parquet (default: features.users_path or the simulator's ground truth)")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Compute the batch features (PySpark) from the event log and write the offline store."""
    from flywheel.events.log import open_event_log
    from flywheel.events.validation import EventValidator, ValidationRules
    from flywheel.features.backfill import run_backfill
    from flywheel.features.sources import SourceError

    cfg = load(config)
    fcfg = features_config(cfg)
    fcfg = fcfg.model_copy(
        update={k: v for k, v in {"catalog_path": catalog, "users_path": users}.items() if v is not None}
    )
    rules = ValidationRules(
        max_clock_skew_ms=int(cfg.validation.max_clock_skew_seconds * 1000),
        max_watch_seconds=cfg.validation.max_watch_seconds,
        earliest_ms=cfg.validation.earliest_ms,
    )
    log = open_event_log(cfg.event_log)
    try:
        with _progress() as progress:
            progress.add_task(
                f"reading {cfg.event_log.topics.events!r}, validating, running the Spark job ({fcfg.spark_master})"
            )
            summary = run_backfill(fcfg, log, cfg.event_log.topics.events, EventValidator(rules=rules))
    except SourceError as exc:
        fail(str(exc))
    finally:
        log.close()
    table = Table(title="backfill")
    table.add_column("what")
    table.add_column("value", justify="right")
    for label, value in (
        ("records read", f"{summary.records_read:,}"),
        ("invalid events (DLQ, excluded)", f"{summary.invalid_events:,}"),
        ("duplicate events (dropped)", f"{summary.duplicate_events:,}"),
        ("valid events used", f"{summary.valid_events:,}"),
        ("catalog rows", f"{summary.catalog_rows:,}"),
        ("users rows", f"{summary.user_rows:,}"),
        *((f"rows written: {view}", f"{rows:,}") for view, rows in summary.rows_written.items()),
        ("first event", _ms(summary.first_event_ms)),
        ("cutoff (features as of)", _ms(summary.cutoff_ms)),
        ("seconds", f"{summary.seconds:.1f}"),
    ):
        table.add_row(label, value)
    console.print(table)
    if summary.rejections:
        reasons = Table(title="invalid events by reason")
        reasons.add_column("code")
        reasons.add_column("events", justify="right")
        for code, count in summary.rejections.items():
            reasons.add_row(code, f"{count:,}")
        console.print(reasons)
    if not fcfg.catalog_path:
        console.print("[yellow]note:[/] no catalog (features.catalog_path): genre and creator features use defaults")
    if not fcfg.users_path:
        console.print("[yellow]note:[/] no users table (features.users_path): tier and tenure features use defaults")


@app.command()
def materialize(
    start: Annotated[
        datetime | None, typer.Option(help="Oldest feature rows to load (default: the oldest written)")
    ] = None,
    end: Annotated[
        datetime | None, typer.Option(help="Newest feature rows to load (default: the newest written)")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Apply the Feast repo and load the newest feature rows into the online store."""
    from flywheel.features.freshness import newest_offline_row
    from flywheel.features.store import (
        CONTENT_VIEW,
        USER_VIEW,
        FeatureStoreConfigError,
        apply_repo,
        offline_path,
        open_store,
    )
    from flywheel.features.store import materialize as run_materialize

    fcfg = features_config(load(config))
    newest = [newest_offline_row(offline_path(fcfg, v)) for v in (USER_VIEW, CONTENT_VIEW)]
    if any(n is None for n in newest):
        fail(f"the offline store under {fcfg.data_dir} has no feature rows: run `flywheel features backfill` first")
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    oldest = min(
        pc.min(pq.read_table(offline_path(fcfg, v), columns=["event_timestamp"])[0]).as_py()
        for v in (USER_VIEW, CONTENT_VIEW)
    )
    begin = start or oldest - timedelta(seconds=1)
    finish = end or max(n for n in newest if n is not None) + timedelta(seconds=1)
    try:
        with _progress() as progress:
            progress.add_task(f"feast apply + materialize into {fcfg.online_store}")
            store = open_store(fcfg)
            names = apply_repo(store, fcfg.repo_path)
            run_materialize(store, begin, finish)
    except FeatureStoreConfigError as exc:
        fail(str(exc))
    table = Table(title=f"materialized into {fcfg.online_store}")
    table.add_column("what")
    table.add_column("value")
    table.add_row("applied", ", ".join(n for n in names if not n.endswith("__dummy")))
    table.add_row("window", f"{begin:%Y-%m-%d %H:%M:%S} → {finish:%Y-%m-%d %H:%M:%S} UTC")
    console.print(table)


@app.command("training-set")
def training_set(
    output: Annotated[
        Path | None, typer.Option(help="Parquet to write (default: <data_dir>/training/training_set.parquet)")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Build labelled examples (impressions) joined with point-in-time features through Feast."""
    import pandas as pd

    from flywheel.features.backfill import staging_folder, vocabulary
    from flywheel.features.sources import load_catalog
    from flywheel.features.store import FeatureStoreConfigError, apply_repo, open_store
    from flywheel.features.training_set import LABELS, build_training_set, label_impressions

    fcfg = features_config(load(config))
    staged = staging_folder(fcfg) / "events.parquet"
    if not staged.exists():
        fail(f"no backfilled events at {staged}: run `flywheel features backfill` first")
    events = pd.read_parquet(staged)
    catalog = load_catalog(fcfg.catalog_path) if fcfg.catalog_path else None
    durations = {} if catalog is None else dict(zip(catalog["content_id"], catalog["duration_seconds"], strict=True))
    window = int(fcfg.label_window_minutes * 60_000)
    example_event = "impression" if (events["event_type"] == "impression").any() else "playback.started"
    if example_event != "impression":
        console.print("[yellow]note:[/] no impressions in the data (imported interactions?): one example per play")
    try:
        with _progress() as progress:
            progress.add_task("labelling examples and joining point-in-time features (Feast)")
            examples = label_impressions(events, durations, window, example_event=example_event)
            store = open_store(fcfg)
            apply_repo(store, fcfg.repo_path)
            frame = build_training_set(store, examples, vocabulary(fcfg))
    except FeatureStoreConfigError as exc:
        fail(str(exc))
    target = output or Path(fcfg.data_dir) / "training" / "training_set.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(target)
    table = Table(title=f"training set → {target}")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("examples", f"{len(frame):,}")
    for label in LABELS:
        table.add_row(f"{label} rate", f"{frame[label].mean():.4f}" if len(frame) else "-")
    table.add_row("unknown users (defaults)", f"{int((frame['user_known'] == 0).sum()):,}" if len(frame) else "0")
    table.add_row("unknown titles (defaults)", f"{int((frame['content_known'] == 0).sum()):,}" if len(frame) else "0")
    console.print(table)


@app.command()
def freshness(config: ConfigOption = None) -> None:
    """Report the age of each feature view's newest data (exit 1 when one is stale)."""
    from flywheel.features.freshness import view_freshness
    from flywheel.features.store import FeatureStoreConfigError, open_store

    fcfg = features_config(load(config))
    try:
        store = open_store(fcfg)
        report = view_freshness(store, fcfg, datetime.now(UTC))
    except FeatureStoreConfigError as exc:
        fail(str(exc))
    if not report:
        fail("no feature views registered: run `flywheel features materialize` first")
    table = Table(title=f"feature freshness (stale after {fcfg.stale_after_hours:g} h)")
    for column in ("view", "newest row", "age (h)", "materialized until", "stale"):
        table.add_column(column)
    for row in report:
        table.add_row(
            row.view,
            f"{row.newest:%Y-%m-%d %H:%M:%S}" if row.newest else "-",
            f"{row.age_seconds / 3600:.1f}" if row.age_seconds is not None else "-",
            f"{row.materialized_until:%Y-%m-%d %H:%M:%S}" if row.materialized_until else "never",
            "[red]yes[/]" if row.stale else "no",
        )
    console.print(table)
    if any(r.stale for r in report):
        raise typer.Exit(1)
