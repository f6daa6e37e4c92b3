"""`flywheel pipeline ...`: run the KFP pipelines locally (kfp.local), compile them to YAML."""

from __future__ import annotations

import os
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from flywheel.cli.common import ConfigOption, fail, load

if TYPE_CHECKING:
    from flywheel.config.training import TrainingConfig

app = typer.Typer(help="KFP pipelines: run locally with kfp.local, compile to YAML.", no_args_is_help=True)
GOLDEN_DIR = Path("tests/golden/pipelines")
EXIT_STOPPED = 3


class PipelineName(StrEnum):
    """The pipelines."""

    training = "training"
    evaluation = "evaluation"
    retraining = "retraining"


def training_config(config_path: Path | None) -> tuple[TrainingConfig, Path]:
    """The training section (defaults when the file has none) with local paths made absolute."""
    from flywheel.config.training import TrainingConfig

    root = load(config_path)
    section = getattr(root, "training", None) or TrainingConfig()
    home = Path(root.home).resolve()
    uri = section.tracking_uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str(Path(uri.removeprefix("sqlite:///")).resolve())
    artifacts = section.artifact_root
    if "://" not in artifacts:
        artifacts = str(Path(artifacts).resolve())
    return section.model_copy(update={"tracking_uri": uri, "artifact_root": artifacts}), home


def _defaults(config_path: Path | None) -> tuple[Path | None, Path | None]:
    """Default catalog (`default_catalog_path`) and oracle (the simulator's ground truth, when it exists)."""
    from flywheel.events.catalog import default_catalog_path

    root = load(config_path)
    catalog = default_catalog_path(root)
    truth = Path(root.simulator.ground_truth_dir)
    oracle = truth if (truth / "manifest.json").exists() else None
    return catalog, oracle


def _summary(outcome: dict[str, Any], section: TrainingConfig, elapsed: float) -> Table:
    table = Table(title=f"pipeline outcome ({elapsed:.0f} s)")
    table.add_column("what")
    table.add_column("value", overflow="fold")
    for key in ("status", "stage", "reason", "model_name", "version", "alias", "run_id", "serving", "log"):
        if key in outcome:
            table.add_row(key, str(outcome[key]))
    metrics = dict(outcome.get("metrics", {}))
    if outcome.get("run_id") and not metrics:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        import mlflow

        mlflow.set_tracking_uri(section.tracking_uri)
        logged = mlflow.get_run(outcome["run_id"]).data.metrics
        for name in (
            "two_stage.ndcg_at_10",
            "retrieval.ndcg_at_10",
            "popularity.ndcg_at_10",
            "oracle.ndcg_at_10",
            "champion.two_stage.ndcg_at_10",
            "ratio.two_stage_vs_oracle.ndcg_at_10",
            "ratio.two_stage_vs_popularity.ndcg_at_10",
            "sim.two_stage.ndcg_at_10",
            "sim.popularity.ndcg_at_10",
            "sim.oracle.ndcg_at_10",
            "sim.ratio.two_stage_vs_oracle.ndcg_at_10",
            "sim.ratio.two_stage_vs_popularity.ndcg_at_10",
            "heads.click.auc",
            "heads.watch_50.auc",
            "heads.click.ece",
            "latency.ranker_p99_ms",
        ):
            if name in logged:
                metrics[name] = logged[name]
    for name, value in metrics.items():
        table.add_row(name, f"{value:.4f}")
    return table


@app.command("run")
def run(
    pipeline: Annotated[PipelineName, typer.Argument(help="training | evaluation | retraining")],
    window: Annotated[
        Path | None,
        typer.Option(help="Training-set parquet of the window (default: built by the feature platform in the run)."),
    ] = None,
    catalog: Annotated[
        Path | None, typer.Option(help="Catalog parquet (content_id, genres, creator_id, synopsis, release_ts).")
    ] = None,
    oracle: Annotated[
        Path | None,
        typer.Option(help="Simulator ground-truth folder for the oracle (default: the simulator's, if any)."),
    ] = None,
    model: Annotated[str, typer.Option(help="evaluation: the version number or alias to score.")] = "champion",
    window_start: Annotated[
        str, typer.Option(help="Keep examples from this ISO time on (e.g. a new window for retraining).")
    ] = "",
    window_end: Annotated[
        str,
        typer.Option(
            help="Keep examples before this ISO time; the freshness check measures the newest example against it "
            "(default: against the newest backfilled event; not checked for a --window file)."
        ),
    ] = "",
    config: ConfigOption = None,
) -> None:
    """Run a pipeline locally with kfp.local; print progress and a summary table."""
    from pipelines.local import run_local

    section, home = training_config(config)
    default_catalog, default_oracle = _defaults(config)
    catalog, oracle = catalog or default_catalog, oracle or default_oracle
    if window is not None and not window.exists():
        fail(f"no training window at {window}")
    if catalog is None or not catalog.exists():
        fail(
            f"no catalog at {catalog}: run `flywheel import-catalog FILE` or pass --catalog "
            "(the simulator's ground truth has catalog.parquet)"
        )
    arguments: dict[str, Any] = {
        "window_uri": str(window.resolve()) if window else "",
        "platform_config_json": "" if window else load(config).model_dump_json(),
        "catalog_uri": str(catalog.resolve()),
        "oracle_uri": str(oracle.resolve()) if oracle else "",
        "config_json": section.model_dump_json(),
        "window_start": window_start,
        "window_end": window_end,
    }
    if pipeline is PipelineName.evaluation:
        arguments["model_ref"] = model
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = home / "pipelines" / f"{pipeline.value}-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    out = Console(file=sys.stdout)
    started: dict[str, float] = {}
    t0 = time.perf_counter()

    def on_event(task: str, status: str) -> None:
        if status == "started":
            started[task] = time.perf_counter()
            out.print(f"[cyan]>[/] {task} ...", highlight=False)
        else:
            took = time.perf_counter() - started.get(task, t0)
            mark = "[green]ok[/]" if status == "SUCCESS" else f"[red]{status}[/]"
            out.print(f"  {mark} {task} ({took:.1f} s)", highlight=False)

    out.print(f"running [bold]{pipeline.value}[/] locally (kfp.local); logs: {run_dir / 'kfp.log'}")
    outcome = run_local(
        pipeline.value, arguments, pipeline_root=run_dir / "root", log_path=run_dir / "kfp.log", on_event=on_event
    )
    out.print(_summary(outcome, section, time.perf_counter() - t0))
    status = outcome.get("status")
    if status == "failed":
        fail(f"the pipeline failed: {outcome.get('reason', '')[-600:]}", code=1)
    if status == "stopped":
        out.print(f"[yellow]stopped at the {outcome.get('stage')} gate; the champion is unchanged.[/]")
        raise typer.Exit(EXIT_STOPPED)


@app.command("compile")
def compile_(
    out: Annotated[Path, typer.Option(help="Folder for the YAML files.")] = Path(".flywheel/pipelines/compiled"),
    golden: Annotated[bool, typer.Option("--golden", help=f"Write the golden files ({GOLDEN_DIR}).")] = False,
) -> None:
    """Compile every pipeline to KFP v2 YAML."""
    from pipelines.compile import compile_all

    table = Table(title="compiled pipelines")
    table.add_column("pipeline")
    table.add_column("file")
    for path in compile_all(GOLDEN_DIR if golden else out):
        table.add_row(path.stem, str(path))
    Console(file=sys.stdout).print(table)


@app.command("sample-data")
def sample_data(
    out: Annotated[
        Path, typer.Option(help="Folder for window.parquet, catalog.parquet and the oracle (ground_truth/).")
    ] = Path(".flywheel/sample"),
    users: Annotated[int, typer.Option(min=10)] = 400,
    items: Annotated[int, typer.Option(min=10)] = 300,
    days: Annotated[int, typer.Option(min=1, help="Simulated days.")] = 4,
    seed: int = 0,
    first_day: Annotated[
        int, typer.Option(min=0, help="Days simulated before the window (features only): a later window.")
    ] = 0,
    config: ConfigOption = None,
) -> None:
    """Write a small simulated window (training-set contract), its catalog and oracle: the platform
    simulator's traffic (the configured behaviour, at this scale) without the event log."""
    from flywheel.simulator.frames import simulate_window

    if first_day >= days:
        fail(f"--first-day {first_day} must be before the last of the {days} days")
    sim = load(config).simulator.model_copy(update={"users": users, "items": items, "days": days, "seed": seed})
    window = simulate_window(sim, first_day=first_day)
    out.mkdir(parents=True, exist_ok=True)
    window.frame.to_parquet(out / "window.parquet")
    window.catalog.to_parquet(out / "catalog.parquet")
    window.save_ground_truth(out / "ground_truth")
    Console(file=sys.stdout).print(f"{len(window.frame):,} impressions, {items} items, {users} users -> {out}")
