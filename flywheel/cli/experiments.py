"""`flywheel experiments ...`: assign units, validate the registry, plan and analyse experiments."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from flywheel.cli.common import ConfigOption, console, fail, load
from flywheel.config import FlywheelConfig
from flywheel.experiments.config import ExperimentRegistry, load_registry_file

app = typer.Typer(help="Experimentation: assignment, planning, analysis.", no_args_is_help=True)


def _registry(cfg: FlywheelConfig, path: Path | None = None) -> ExperimentRegistry:
    """The registry of the configuration, or of ``path``; exits with the reasons when invalid."""
    file = path or cfg.experiments.registry_file
    if file is None:
        return cfg.experiments.registry
    try:
        return load_registry_file(file)
    except ValueError as exc:
        fail(str(exc))


@app.command("assign")
def assign(
    unit_id: Annotated[str, typer.Argument(help="The unit (user id) to assign")],
    layer: Annotated[str | None, typer.Option(help="Only this layer (default: every layer)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    config: ConfigOption = None,
) -> None:
    """Print where a unit lands: per layer, its bucket, experiment and variant."""
    from flywheel.experiments.assignment import assign as assign_unit
    from flywheel.experiments.assignment import assign_all
    from flywheel.experiments.guardrails import paused_experiments

    cfg = load(config)
    registry = _registry(cfg)
    paused = paused_experiments(cfg.experiments.report_dir)
    try:
        found = (
            {layer: assign_unit(unit_id, registry, layer, paused=paused)}
            if layer
            else assign_all(unit_id, registry, paused=paused)
        )
    except KeyError as exc:
        fail(str(exc.args[0]))
    if as_json:
        rows = [
            {"layer": a.layer, "bucket": a.bucket, "experiment_id": a.experiment_id,
             "variant": a.variant, "reason": a.reason}
            for a in found.values()
        ]  # fmt: skip
        typer.echo(json.dumps({"unit_id": unit_id, "assignments": rows}))
        return
    table = Table(title=f"assignment of {unit_id}")
    for column in ("layer", "bucket", "experiment", "variant", "reason"):
        table.add_column(column)
    for a in found.values():
        table.add_row(a.layer, str(a.bucket), a.experiment_id or "—", a.variant or "—", a.reason)
    console.print(table)


@app.command("validate")
def validate(
    registry_file: Annotated[Path | None, typer.Argument(help="A registry YAML (default: the configuration's)")] = None,
    config: ConfigOption = None,
) -> None:
    """Validate the layers and experiments; print each layer's bucket ranges."""
    cfg = load(config)
    registry = _registry(cfg, registry_file)
    table = Table(title="experiment registry")
    for column in ("layer", "experiment", "range", "variants", "metrics", "status"):
        table.add_column(column)
    for exp in sorted(registry.experiments, key=lambda e: (e.layer, e.bucket_range)):
        end = exp.offset_percent + exp.allocation_percent
        variants = ", ".join(f"{v.name} {w:.0%}" for v, w in zip(exp.variants, exp.weights.values(), strict=True))
        table.add_row(
            exp.layer, exp.id, f"[{exp.offset_percent:g}%, {end:g}%)", variants,
            ", ".join(exp.all_metrics), "paused" if exp.paused else "running",
        )  # fmt: skip
    console.print(table)
    console.print(f"holdout: {registry.holdout.percent:g}% — registry is valid", highlight=False)


@app.command("plan")
def plan(
    baseline: Annotated[float, typer.Option(help="Control mean (a rate in (0, 1) without --sd)")],
    mde: Annotated[float, typer.Option(help="Minimum detectable effect, relative (0.05 = 5%)")],
    sd: Annotated[float | None, typer.Option(help="Per-unit standard deviation (omit for a proportion)")] = None,
    absolute: Annotated[bool, typer.Option(help="Read --mde as an absolute difference")] = False,
    variants: Annotated[int, typer.Option(min=2, help="Arms, control included")] = 2,
    daily_units: Annotated[int | None, typer.Option(help="New units per day entering the experiment")] = None,
    units: Annotated[int | None, typer.Option(help="Units per variant available: also report power and MDE")] = None,
    alpha: Annotated[float | None, typer.Option(help="Significance level (default: config)")] = None,
    power: Annotated[float | None, typer.Option(help="Target power (default: config)")] = None,
    config: ConfigOption = None,
) -> None:
    """Size an experiment: units per variant, total units and days for a given MDE."""
    from flywheel.experiments import stats

    cfg = load(config)
    a = cfg.experiments.alpha if alpha is None else alpha
    pw = cfg.experiments.power if power is None else power
    k = variants - 1
    a_each = a / k  # Bonferroni over the treatment arms
    diff = mde if absolute else baseline * mde
    try:
        if sd is None:
            if not 0 < baseline < 1:
                fail("without --sd the baseline is a proportion and must lie in (0, 1)")
            n = stats.sample_size_proportions(baseline, diff / baseline, a_each, pw)
            spread = math.sqrt(baseline * (1 - baseline))
        else:
            n = stats.sample_size(abs(diff), sd, a_each, pw)
            spread = sd
    except ValueError as exc:
        fail(str(exc))
    table = Table(title="experiment plan")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("baseline", f"{baseline:g}")
    table.add_row("minimum detectable effect", f"{diff:+g} ({diff / baseline:+.2%})")
    table.add_row("alpha (per comparison)", f"{a_each:g}")
    table.add_row("power", f"{pw:g}")
    table.add_row("units per variant", f"{n:,}")
    table.add_row("units in total", f"{n * variants:,}")
    if daily_units:
        table.add_row("days", f"{math.ceil(n * variants / daily_units):,}")
    if units:
        table.add_row(
            f"power at {units:,} per variant", f"{float(stats.power_at(units, abs(diff), spread, a_each)):.3f}"
        )
        mde_abs = stats.minimum_detectable_effect(units, spread, a_each, pw)
        table.add_row(f"MDE at {units:,} per variant", f"{mde_abs:.4g} ({mde_abs / baseline:.2%})")
    console.print(table)


@app.command("analyze")
def analyze(
    experiment_id: Annotated[str, typer.Argument(help="The experiment id")],
    report_dir: Annotated[Path | None, typer.Option(help="Folder of the HTML report (default: config)")] = None,
    config: ConfigOption = None,
) -> None:
    """Analyse an experiment from the event log: print the table, write the HTML report."""
    from flywheel.events.log import open_event_log
    from flywheel.experiments.analysis import AnalysisSettings
    from flywheel.experiments.analysis import analyze as run_analysis
    from flywheel.experiments.guardrails import write_decision
    from flywheel.experiments.report import write_report, write_summary
    from flywheel.experiments.source import read_events

    cfg = load(config)
    registry = _registry(cfg)
    try:
        spec = registry.experiment(experiment_id)
    except KeyError as exc:
        fail(str(exc.args[0]))
    log = open_event_log(cfg.event_log)
    try:
        events = read_events(log, cfg.event_log.topics.events)
    except Exception as exc:  # noqa: BLE001 - shown to people
        fail(f"cannot read events: {exc}")
    finally:
        log.close()
    result = run_analysis(events, spec, AnalysisSettings.from_config(cfg.experiments))
    folder = report_dir or cfg.experiments.report_dir

    units = ", ".join(f"{k} {v:,}" for k, v in result.units.items())
    console.print(f"[bold]{experiment_id}[/]: {units}; SRM p={result.srm.p_value:.3g}", highlight=False)
    table = Table(title=f"{experiment_id} vs {result.control} (alpha {result.alpha:g})")
    for column in ("metric", "variant", "control", "treatment", "relative [CI]", "p",
                   f"p adj. ({result.correction})", "always-valid p", "CUPED var. red."):  # fmt: skip
        table.add_column(column, justify="left" if column in ("metric", "variant") else "right")
    for r in result.results:
        if r.status != "ok" or r.effect is None:
            table.add_row(r.metric, r.variant, f"[red]{r.message}[/]", "", "", "", "", "", "")
            continue
        e = r.effect
        rel = f"{e.relative:+.2%} [{e.relative_ci_low:+.2%}, {e.relative_ci_high:+.2%}]"
        table.add_row(
            r.metric + ("*" if r.role == "primary" else ""), r.variant, f"{e.control_mean:.4g}",
            f"{e.treatment_mean:.4g}", f"[green]{rel}[/]" if r.significant else rel,
            f"{e.p_value:.3g}", "—" if r.p_adjusted is None else f"{r.p_adjusted:.3g}",
            f"{r.sequential.p_value:.3g}" if r.sequential else "—",
            "—" if r.cuped_variance_reduction is None else f"{r.cuped_variance_reduction:.1%}",
        )  # fmt: skip
    console.print(table)
    if result.message != "ok":
        console.print(f"[yellow]{result.message}[/]", highlight=False)
    path = write_report(result, folder)
    data = write_summary(result, folder)
    write_decision(folder, experiment_id, result.guardrails)
    console.print(f"report: {path}\nsummary: {data}", highlight=False)
    if result.guardrails.pause:
        console.print(f"[bold red]paused[/]: {'; '.join(result.guardrails.reasons)}", highlight=False)
