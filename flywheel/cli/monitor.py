"""`flywheel monitor ...`: drift and skew jobs, the retrain trigger's webhook and its audit log."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from flywheel.cli.common import ConfigOption, fail, load

app = typer.Typer(help="Monitoring: drift, data quality, skew, the retrain trigger.", no_args_is_help=True)
WindowOption = Annotated[
    str | None,
    typer.Option(
        help="A duration back from the newest record (15m, 1h, 24h, 7d) or START/END in ISO time "
        "(default: monitoring.drift.window)."
    ),
]


def _audit_path(config_path: Path | None) -> Path:
    root = load(config_path)
    return root.monitoring.trigger.audit_path or Path(root.home) / "monitoring" / "decisions.jsonl"


@app.command()
def drift(
    window: WindowOption = None,
    prediction_window: Annotated[
        str | None,
        typer.Option(help="The prediction log's window on its own (the server's) clock, if not --window."),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(help="The prediction log's window the served scores are compared with (default: the one before)."),
    ] = None,
    every: Annotated[float, typer.Option(help="Repeat every this many seconds (0: once).", min=0)] = 0.0,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve the gauges on this port (default: monitoring.metrics_port).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Drift, target drift and data quality of the latest window against the champion's training reference."""
    from flywheel.monitoring.windows import WindowError
    from monitoring.drift_job import run_drift

    root = load(config)
    spec = window or root.monitoring.drift.window
    port = metrics_port or root.monitoring.metrics_port
    out = Console(file=sys.stdout)
    if port:
        from monitoring.metrics import start_metrics_server

        start_metrics_server(port)
        out.print(f"metrics on http://127.0.0.1:{port}/metrics")
    catalog = _catalog(root)
    while True:
        try:
            with out.status(f"checking the last {spec} of the prediction log and the event stream ..."):
                result = run_drift(
                    root,
                    window_spec=spec,
                    prediction_window=prediction_window,
                    prediction_baseline=baseline,
                    catalog=catalog,
                )
        except WindowError as exc:
            fail(str(exc))
        table = Table(title=f"drift vs champion v{result.reference_version or '-'} (window {spec})")
        for col in ("source", "window", "rows", "status", "drifted share", "detail", "report"):
            table.add_column(col, overflow="fold")
        for res in result.results:
            share = "-" if res.features.share != res.features.share else f"{res.features.share:.0%}"
            detail = [res.features.detail]
            if res.scores is not None:
                detail.append(res.scores.detail)
            detail += [t.detail for t in res.targets]
            detail += [f"{q.check}: {q.detail}" for q in res.quality if not q.passed]
            table.add_row(
                res.source, res.window.label, str(res.rows), res.status, share, "\n".join(detail), res.report_dir
            )
        if not result.results:
            out.print("[yellow]no predictions and no events yet: insufficient data[/]")
        out.print(table)
        for view in result.freshness:
            age = "no rows" if view.age_seconds is None else f"{view.age_seconds / 3600:.1f} h old"
            out.print(f"feature view {view.view}: {age}{' (stale)' if view.stale else ''}")
        if every <= 0:
            return
        time.sleep(every)


def _catalog(root: object):  # noqa: ANN202 - a pandas frame or None
    import pandas as pd

    truth = Path(root.simulator.ground_truth_dir)  # type: ignore[attr-defined]
    path = root.features.catalog_path or truth / "catalog.parquet"  # type: ignore[attr-defined]
    return pd.read_parquet(path) if Path(path).exists() else None


@app.command()
def skew(window: WindowOption = None, config: ConfigOption = None) -> None:
    """Training-serving skew: logged user features against the offline store for the same user and time."""
    from flywheel.monitoring.windows import WindowError
    from monitoring.skew_job import run_skew

    root = load(config)
    try:
        report = run_skew(root, window_spec=window or root.monitoring.drift.window)
    except WindowError as exc:
        fail(str(exc))
    table = Table(title=f"training-serving skew: {report.status} ({report.rows} predictions)")
    for col in ("feature", "compared", "mismatches", "share", "max |diff|"):
        table.add_column(col)
    for f in report.features:
        table.add_row(
            f.feature, str(f.compared), str(f.mismatches), f"{f.mismatch_share:.1%}", f"{f.max_abs_difference:.3g}"
        )
    Console(file=sys.stdout).print(table)
    Console(file=sys.stdout).print(report.detail)


@app.command()
def decisions(
    last: Annotated[int, typer.Option(help="Show the last N decisions.", min=1)] = 50,
    config: ConfigOption = None,
) -> None:
    """Print the retrain trigger's audit log: every decision, why, which run, what came of it."""
    from flywheel.monitoring.trigger import read_audit, summarize

    path = _audit_path(config)
    records = read_audit(path)
    table = Table(title=f"retrain decisions ({len(records)} in {path})")
    for col in ("time (UTC)", "action", "guard", "alert", "run", "reason"):
        table.add_column(col, overflow="fold")
    for rec in records[-last:]:
        when = datetime.fromtimestamp(rec.time_s, UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(when, rec.action, rec.guard, rec.alert, rec.run_id or "", rec.reason)
    out = Console(file=sys.stdout)
    out.print(table)
    out.print(", ".join(f"{k}: {v}" for k, v in summarize(records).items()) or "no decisions yet")


@app.command()
def webhook(
    port: Annotated[int | None, typer.Option(help="Port (default: monitoring.trigger.port, 9095).")] = None,
    host: Annotated[str | None, typer.Option(help="Address (default: monitoring.trigger.host).")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Serve the trigger's metrics on this port.")] = None,
    config: ConfigOption = None,
) -> None:
    """The Alertmanager receiver: guarded retraining on drift alerts (Ctrl-C stops it)."""
    from flywheel.monitoring.trigger import TriggerRules
    from monitoring.retrain import runner_for
    from monitoring.trigger_service import RetrainTrigger, webhook_server

    root = load(config)
    cfg = root.monitoring.trigger
    trigger = RetrainTrigger(
        rules=TriggerRules(cfg.alerts, cfg.debounce_seconds, cfg.cooldown_seconds, cfg.max_runs_per_day),
        audit_path=_audit_path(config),
        runner=runner_for(root),
        retry_attempts=cfg.retry_attempts,
        retry_backoff_seconds=cfg.retry_backoff_seconds,
    )
    if metrics_port:
        from monitoring.metrics import start_metrics_server

        start_metrics_server(metrics_port)
    server = webhook_server(trigger, host or cfg.host, port or cfg.port)
    out = Console(file=sys.stdout)
    where = f"http://{host or cfg.host}:{port or cfg.port}/"
    out.print(f"retrain trigger on {where} (runner: {cfg.runner}); audit: {trigger.audit_path}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        out.print("stopping; waiting for a retraining in flight ...")
    finally:
        server.server_close()
        trigger.wait()


@app.command()
def loop(
    users: Annotated[int, typer.Option(help="Simulated users (the demo's scale).", min=50)] = 1000,
    days: Annotated[int, typer.Option(help="Simulated days after the warm-up.", min=3)] = 7,
    shift_day: Annotated[
        float, typer.Option(help="Day (after the warm-up) on which part of the users' tastes shift.", min=1)
    ] = 5.0,
    warm_days: Annotated[
        int,
        typer.Option(
            help="Days simulated before the loop's days: the history users arrive with (their features "
            "and the titles' statistics), never trained on.",
            min=0,
        ),
    ] = 7,
    sessions: Annotated[
        float,
        typer.Option(help="Sessions per user and day (streaming users come back about twice a day).", min=0.05),
    ] = 2.0,
    taste_scale: Annotated[
        float,
        typer.Option(
            help="How far apart the users' tastes are (simulator.taste_scale; 10: users who know what they like).",
            min=0.5,
        ),
    ] = 10.0,
    seed: Annotated[int | None, typer.Option(help="Simulator seed (default: simulator.seed).")] = None,
    requests: Annotated[int, typer.Option(help="Requests of simulated users per serving phase.", min=10)] = 1000,
    config: ConfigOption = None,
) -> None:
    """Run the whole loop in-process: simulate -> features -> champion -> drift -> alert -> one guarded
    retraining -> canary -> decision; prints the summary and writes an HTML report."""
    from flywheel.config.models import FlywheelConfig
    from monitoring.loop import LoopDays, run_loop

    try:
        span = LoopDays(days=days, shift_day=shift_day, warm_days=warm_days)
    except ValueError as exc:
        fail(f"--shift-day/--days: {exc}")
    raw = load(config).model_dump(mode="json")
    raw["simulator"].update(
        users=users, days=span.simulated_days, sessions_per_user_day=sessions, taste_scale=taste_scale
    )
    if seed is not None:
        raw["simulator"]["seed"] = seed
    raw["simulator"]["scenarios"]["taste_drift"].update(
        enabled=True, at_day=span.shift_at_day, users_fraction=0.6, strength=2.0
    )
    # the demo's shared machine: no latency guardrail (the popularity baseline and the margin
    # against the champion hold as configured)
    raw["training"]["promotion"].update(max_latency_ms_p99=1000.0)
    # the demo's canary: two stages, sized for the demo's traffic (a cluster keeps the configured ones)
    raw["rollout"].update(schedule=[0.2, 0.5], min_impressions_per_stage=1500, min_units_per_variant=50)
    result = run_loop(
        FlywheelConfig.model_validate(raw),
        console=Console(file=sys.stdout),
        shift_day=shift_day,
        requests=requests,
        warm_days=warm_days,
    )
    failed = [s for s in result.stages if s.status == "failed"]
    if failed:
        fail(f"stage {failed[0].name} failed: {failed[0].detail}", code=1)
