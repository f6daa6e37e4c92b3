"""`flywheel simulate`, `import-interactions` and `import-catalog`: fill the event log and the catalog."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from flywheel.cli.common import ConfigOption, console, fail, load


def _stamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def simulate_command(
    config: ConfigOption = None,
    days: Annotated[int | None, typer.Option(help="Simulated days (overrides simulator.days)", min=1)] = None,
    users: Annotated[int | None, typer.Option(help="Human users (overrides simulator.users)", min=1)] = None,
    items: Annotated[int | None, typer.Option(help="Initial titles (overrides simulator.items)", min=10)] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (overrides simulator.seed)")] = None,
    ground_truth: Annotated[
        Path | None, typer.Option(help="Ground-truth folder (overrides simulator.ground_truth_dir)", file_okay=False)
    ] = None,
) -> None:
    """Simulate the traffic of a streaming platform into the events topic, with its ground truth."""
    from flywheel.simulator.engine import simulate

    cfg = load(config)
    overrides = {
        k: v
        for k, v in {
            "days": days,
            "users": users,
            "items": items,
            "seed": seed,
            "ground_truth_dir": ground_truth,
        }.items()
        if v is not None
    }
    if overrides:
        try:
            sim = cfg.simulator.model_validate({**cfg.simulator.model_dump(), **overrides})
        except ValueError as exc:
            fail(str(exc))
        cfg = cfg.model_copy(update={"simulator": sim})
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[clock]}  {task.fields[events]:>12,} events"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("simulating", total=1.0, clock="", events=0)

        def report(done_ms: int, total_ms: int, events: int) -> None:
            progress.update(
                task,
                completed=done_ms / total_ms if total_ms else 1.0,
                clock=_stamp(start_ms + done_ms),
                events=events,
            )

        start_ms = int(datetime.combine(cfg.simulator.start_date, datetime.min.time(), tzinfo=UTC).timestamp() * 1000)
        try:
            summary = simulate(cfg, progress=report)
        except Exception as exc:  # noqa: BLE001 - shown to people
            fail(str(exc))
        progress.update(task, completed=1.0)

    table = Table(title=f"simulated {summary.days} day(s) from {_stamp(summary.start_ms)} UTC")
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, count in sorted(summary.by_type.items(), key=lambda kv: -kv[1]):
        table.add_row(f"events: {name}", f"{count:,}")
    table.add_row(f"[bold]records written to topic {summary.topic!r}", f"[bold]{summary.events_written:,}")
    delivery = summary.delivery
    table.add_row("duplicates injected", f"{delivery.duplicates:,}")
    table.add_row("late events injected", f"{delivery.late:,}")
    table.add_row("broken events injected", f"{delivery.broken:,}")
    table.add_row("events with skewed clocks", f"{delivery.skewed:,}")
    table.add_row("events lost in the outage", f"{delivery.dropped_outage:,}")
    table.add_row("sessions", f"{summary.sessions:,}")
    table.add_row("users (+ bots)", f"{summary.users:,} (+ {summary.bots:,})")
    table.add_row("items (initial / total)", f"{summary.items_initial:,} / {summary.items_total:,}")
    table.add_row("wall time", f"{summary.seconds:.1f} s")
    table.add_row("events/s", f"{summary.events_per_second:,.0f}")
    console.print(table)
    if summary.ground_truth is not None:
        console.print(f"ground truth: {summary.ground_truth}", highlight=False)


def import_command(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet file of interactions", exists=True, dir_okay=False)],
    config: ConfigOption = None,
    user_col: Annotated[str, typer.Option(help="Column of the user id")] = "user_id",
    item_col: Annotated[str, typer.Option(help="Column of the item id")] = "item_id",
    time_col: Annotated[str, typer.Option(help="Column of the time")] = "timestamp",
    rating_col: Annotated[str | None, typer.Option(help="Column of an explicit rating")] = None,
    watch_fraction_col: Annotated[str | None, typer.Option(help="Column of the fraction watched (0..1)")] = None,
    duration_col: Annotated[str | None, typer.Option(help="Column of the item duration in seconds")] = None,
    time_format: Annotated[str, typer.Option(help="auto, s (epoch seconds), ms (epoch ms) or iso")] = "auto",
    rating_min: Annotated[float, typer.Option(help="Smallest valid rating")] = 0.0,
    rating_max: Annotated[float, typer.Option(help="Largest valid rating")] = 5.0,
    like_threshold: Annotated[float, typer.Option(help="A rating at or above this also writes a like")] = 4.0,
    default_duration: Annotated[
        float, typer.Option(help="Duration (s) used with a watch fraction when no duration column is given")
    ] = 3600.0,
    errors_file: Annotated[
        Path | None,
        typer.Option(help="CSV of the bad rows (default: <home>/imports/<file>.errors.csv)", dir_okay=False),
    ] = None,
    allow_bad_rows: Annotated[bool, typer.Option(help="Write the good rows even if some rows are bad")] = False,
) -> None:
    """Turn interactions you already have (CSV or Parquet) into events in the log."""
    from flywheel.events.catalog import default_catalog_path
    from flywheel.events.importer import ImportFileError, ImportOptions, import_interactions
    from flywheel.features.sources import load_catalog

    if time_format not in ("auto", "s", "ms", "iso"):
        fail(f"--time-format must be auto, s, ms or iso, not {time_format!r}")
    cfg = load(config)
    options = ImportOptions(
        user_col=user_col,
        item_col=item_col,
        time_col=time_col,
        rating_col=rating_col,
        watch_fraction_col=watch_fraction_col,
        duration_col=duration_col,
        time_format=time_format,  # type: ignore[arg-type]
        rating_min=rating_min,
        rating_max=rating_max,
        like_threshold=like_threshold,
        default_duration_seconds=default_duration,
        max_future_ms=int(cfg.validation.max_clock_skew_seconds * 1000),
        earliest_ms=cfg.validation.earliest_ms,
    )
    errors = errors_file or cfg.home / "imports" / f"{file.name}.errors.csv"
    catalog_path = default_catalog_path(cfg)
    known = None if catalog_path is None else set(load_catalog(catalog_path)["content_id"].astype(str))
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[rows]:>12,} rows"))
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task(f"importing {file.name}", total=None, rows=0)

        def report(phase: str, rows: int) -> None:
            progress.update(task, description=f"{phase} {file.name}", rows=rows)

        try:
            summary = import_interactions(
                file,
                event_log_config=cfg.event_log,
                topic=cfg.event_log.topics.events,
                options=options,
                allow_bad_rows=allow_bad_rows,
                errors_file=errors,
                progress=report,
                known_titles=known,
            )
        except ImportFileError as exc:
            fail(str(exc))
        progress.update(task, total=1, completed=1, rows=summary.rows)

    table = Table(title=f"import of {file.name}")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("rows read", f"{summary.rows:,}")
    table.add_row("good rows", f"{summary.good_rows:,}")
    table.add_row("bad rows", f"{len(summary.bad_rows):,}")
    for name, count in sorted(summary.by_type.items()):
        table.add_row(f"events: {name}", f"{count:,}")
    table.add_row(f"[bold]records written to topic {summary.topic!r}", f"[bold]{summary.events_written:,}")
    console.print(table)
    if known is None:
        console.print("note: no catalog to check titles against (run `flywheel import-catalog` first)")
    elif summary.absent_titles:
        absent = cfg.home / "imports" / f"{file.name}.absent-titles.csv"
        absent.parent.mkdir(parents=True, exist_ok=True)
        absent.write_text(
            "content_id,rows\n" + "".join(f"{c},{n}\n" for c, n in summary.absent_titles.most_common()),
            encoding="utf-8",
        )
        console.print(
            f"[yellow]{summary.absent_rows:,} good row(s) name {len(summary.absent_titles):,} title(s) absent from "
            f"the catalog {catalog_path}[/]: written (known by id only); listed in {absent}",
            highlight=False,
        )
    _report_bad_rows(summary.bad_rows, summary.errors_file, allow_bad_rows=allow_bad_rows)


def _report_bad_rows(bad_rows: Sequence[Any], errors_file: Path | None, *, allow_bad_rows: bool) -> None:
    """Print the first bad rows of an import (line, reason) and stop unless ``allow_bad_rows``."""
    if not bad_rows:
        return
    bad = Table(title="bad rows (line 1 is the header)")
    bad.add_column("line", justify="right")
    bad.add_column("reason")
    for row in bad_rows[:50]:
        bad.add_row(str(row.line), row.reason)
    if len(bad_rows) > 50:
        bad.add_row("...", f"{len(bad_rows) - 50} more in the errors file")
    console.print(bad)
    console.print(f"bad rows written to {errors_file}", highlight=False)
    if not allow_bad_rows:
        fail(
            f"{len(bad_rows)} bad row(s); nothing was written (use --allow-bad-rows to write the good rows)",
            code=1,
        )


def register(app: typer.Typer) -> None:
    """Add the commands of this module to the root app."""
    app.command("simulate")(simulate_command)
    app.command("import-interactions")(import_command)
    app.command("import-catalog")(import_catalog_command)


def import_catalog_command(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet file of titles", exists=True, dir_okay=False)],
    config: ConfigOption = None,
    id_col: Annotated[str, typer.Option(help="Column of the content id")] = "content_id",
    title_col: Annotated[str | None, typer.Option(help="Column of the title ('' if none)")] = "title",
    genres_col: Annotated[str | None, typer.Option(help="Column of the genres ('' if none)")] = "genres",
    genre_separator: Annotated[str, typer.Option(help="Separator between genres in one cell")] = "|",
    no_genres_value: Annotated[
        str, typer.Option(help="A genres value that means none, e.g. '(no genres listed)'")
    ] = "",
    release_col: Annotated[
        str | None, typer.Option(help="Column of the release date or year (default: a '(YYYY)' ending the title)")
    ] = None,
    creators_col: Annotated[str | None, typer.Option(help="Column of the creators (director, artist, host)")] = None,
    text_col: Annotated[
        list[str] | None, typer.Option(help="Free-text column(s) for the synopsis (repeatable)")
    ] = None,
    duration_col: Annotated[str | None, typer.Option(help="Column of the duration in seconds")] = None,
    default_duration: Annotated[float, typer.Option(help="Duration (s) of titles without one")] = 3600.0,
    out: Annotated[
        Path | None, typer.Option(help="Catalog parquet to write (default: <home>/catalog/catalog.parquet)")
    ] = None,
    errors_file: Annotated[
        Path | None, typer.Option(help="CSV of the bad rows (default: <home>/imports/<file>.errors.csv)")
    ] = None,
    allow_bad_rows: Annotated[bool, typer.Option(help="Write the good rows even if some rows are bad")] = False,
) -> None:
    """Import your catalog (titles, genres, release dates, creators, free text) for the pipelines."""
    from flywheel.events.catalog import IMPORTED_CATALOG, CatalogOptions, import_catalog
    from flywheel.events.catalog import genre_name as normalise
    from flywheel.events.importer import ImportFileError

    cfg = load(config)
    options = CatalogOptions(
        id_col=id_col,
        title_col=title_col or None,
        genres_col=genres_col or None,
        genre_separator=genre_separator,
        no_genres_value=no_genres_value,
        release_col=release_col or None,
        creators_col=creators_col or None,
        text_cols=tuple(text_col or ()),
        duration_col=duration_col or None,
        default_duration_seconds=default_duration,
        genres=tuple(normalise(g) for g in cfg.features.genres),
    )
    target = out or cfg.home / IMPORTED_CATALOG
    errors = errors_file or cfg.home / "imports" / f"{file.name}.errors.csv"
    try:
        result = import_catalog(file, out=target, options=options, allow_bad_rows=allow_bad_rows, errors_file=errors)
    except ImportFileError as exc:
        fail(str(exc))
    table = Table(title=f"catalog import of {file.name}")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("rows read", f"{result.rows:,}")
    table.add_row("good titles", f"{len(result.titles):,}")
    table.add_row("bad rows", f"{len(result.bad_rows):,}")
    table.add_row("titles without a release date", f"{result.without_release:,}")
    console.print(table)
    _report_bad_rows(result.bad_rows, result.errors_file, allow_bad_rows=allow_bad_rows)
    console.print(f"catalog written to {result.out}", highlight=False)
    if out is not None and cfg.features.catalog_path is None:
        console.print("note: set features.catalog_path to this file so that the pipelines read it")
