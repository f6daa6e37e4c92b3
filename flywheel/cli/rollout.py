"""`flywheel rollout start|status|analyze|promote|rollback`: canary rollouts judged on the logs."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from flywheel.cli.common import ConfigOption, console, fail, load
from flywheel.config import FlywheelConfig

if TYPE_CHECKING:
    from flywheel.serving.rollout import Evidence, RolloutRecord
    from flywheel.serving.rollout_registry import AnalysisStep

app = typer.Typer(help="Canary rollouts: start, analyse automatically, promote or roll back.", no_args_is_help=True)


def _connect(config_path: Path | None) -> FlywheelConfig:
    """Load the configuration and point MLflow at its registry (local paths made absolute)."""
    from flywheel.cli.pipeline import training_config
    from flywheel.registry.mlflow_registry import connect

    cfg = load(config_path)
    section, _ = training_config(config_path)
    connect(section.tracking_uri, section.experiment, section.artifact_root)
    return cfg


def _state_line(state: RolloutRecord) -> str:
    if state.rollout_id is None:
        return "no rollout has been started"
    return (
        f"rollout {state.rollout_id}: {state.status}, stage {state.stage}, canary fraction {state.fraction:g} "
        f"(champion v{state.champion_version or '?'}, canary v{state.canary_version or '?'})"
    )


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _evidence_tables(evidence: Evidence) -> tuple[Table, Table]:
    variants = Table(
        title=f"evidence of {evidence.rollout_id} (stage {evidence.stage}, fraction {evidence.fraction:g})"
    )
    for column in ("variant", "requests", "users", "impressions", "CTR", "watch s/imp", "error rate", "p99 ms"):
        variants.add_column(column, justify="right" if column != "variant" else "left")
    for v in evidence.variants.values():
        variants.add_row(
            v.variant,
            str(v.requests),
            str(v.users),
            str(v.impressions),
            _fmt(v.ctr, ".4f"),
            _fmt(v.watch_seconds_per_impression, ".1f"),
            _fmt(v.error_rate, ".2%"),
            _fmt(v.p99_latency_ms, ".1f"),
        )
    tests = Table(title=f"canary vs champion (SRM p={evidence.srm.p_value:.3g}, users {evidence.srm.counts})")
    for column in ("metric", "role", "champion", "canary", "change", "always-valid p", "verdict"):
        tests.add_column(column)
    for t in evidence.tests:
        tests.add_row(
            t.metric,
            t.role,
            _fmt(t.champion_mean, ".4g"),
            _fmt(t.canary_mean, ".4g"),
            _fmt(t.relative, "+.2%"),
            _fmt(t.p_adjusted, ".3g") if t.status == "ok" else "—",
            t.direction if t.status == "ok" else "untested",
        )
    untested = [t.message for t in evidence.tests if t.status != "ok"]
    if untested:
        tests.caption = f"untested: {untested[0]}"
    return variants, tests


def _print_step(step: AnalysisStep) -> None:
    if step.evidence is not None:
        for table in _evidence_tables(step.evidence):
            console.print(table)
    colour = {"promote": "green", "rollback": "red", "raise": "cyan"}.get(step.decision.decision, "yellow")
    console.print(f"[bold {colour}]{step.decision.decision}[/]: {step.decision.reason}", highlight=False)
    console.print(_state_line(step.after), highlight=False)


@app.command("start")
def start(
    rollout_id: Annotated[
        str | None, typer.Option("--id", help="Rollout id (salts the canary split; default: time + random)")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Canary the `challenger` against the `champion` at the first stage of the schedule."""
    from flywheel.serving.rollout_registry import RolloutError, audit_path, start_rollout

    cfg = _connect(config)
    try:
        state = start_rollout(cfg.training.model_name, cfg.rollout, audit_path(cfg), rollout_id=rollout_id)
    except (RolloutError, ValueError) as exc:
        fail(str(exc), code=1)
    console.print(_state_line(state), highlight=False)


@app.command("status")
def status(
    last: Annotated[int, typer.Option(help="How many of the latest decisions to show", min=0)] = 10,
    config: ConfigOption = None,
) -> None:
    """The rollout state, the aliases and the latest decisions with their evidence."""
    from flywheel.registry.mlflow_registry import aliases
    from flywheel.serving.rollout_registry import audit_path, read_audit, read_state

    cfg = _connect(config)
    name = cfg.training.model_name
    state = read_state(name)
    console.print(_state_line(state), highlight=False)
    console.print(f"aliases of {name}: {aliases(name) or 'none'}", highlight=False)
    records = list(read_audit(audit_path(cfg), state.rollout_id))[-last:] if last else []
    if not records:
        return
    table = Table(title=f"last decisions ({audit_path(cfg)})")
    for column in ("time (UTC)", "decision", "by", "fraction", "CTR champion / canary", "reason"):
        table.add_column(column)
    for r in records:
        variants = (r.get("evidence") or {}).get("variants") or {}
        ctr = " / ".join(_fmt((variants.get(v) or {}).get("ctr"), ".4f") for v in ("champion", "canary"))
        before, after = r.get("before", {}), r.get("after", {})
        table.add_row(
            str(r.get("time", ""))[:19],
            str(r.get("decision")),
            str(r.get("actor")),
            f"{before.get('fraction', 0):g} -> {after.get('fraction', 0):g}",
            ctr if variants else "—",
            str(r.get("reason", "")),
        )
    console.print(table)


@app.command("analyze")
def analyze(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the decision without applying it")] = False,
    every: Annotated[
        float | None, typer.Option(help="Analyse again every N seconds until the rollout ends (Ctrl-C stops)", min=1)
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve the rollout metrics on 127.0.0.1:PORT/metrics while looping")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Analyse the running rollout on the prediction log and the feedback, then raise, promote, roll back or hold."""
    from flywheel.events.log import open_event_log
    from flywheel.serving.rollout_registry import RolloutError, analyze_rollout
    from monitoring.metrics import start_metrics_server
    from monitoring.rollout import observe_step

    cfg = _connect(config)
    if metrics_port is not None:
        start_metrics_server(metrics_port)
    log = open_event_log(cfg.event_log)
    try:
        while True:
            try:
                with console.status("reading the prediction log and the feedback, testing…"):
                    step = analyze_rollout(cfg, log, apply=not dry_run)
            except RolloutError as exc:
                fail(str(exc), code=1)
            observe_step(step)
            _print_step(step)
            if every is None or step.after.status != "running":
                return
            time.sleep(every)
    except KeyboardInterrupt:
        console.print("stopped")
    finally:
        log.close()


def _manual(decision: str, reason: str, config: Path | None) -> None:
    from flywheel.registry.mlflow_registry import PREVIOUS_CHAMPION as PREVIOUS
    from flywheel.serving.rollout import RolloutDecision
    from flywheel.serving.rollout_registry import RolloutError, apply_decision, audit_path, read_state

    cfg = _connect(config)
    name = cfg.training.model_name
    state = read_state(name)
    allowed = ("running",) if decision == "promote" else ("running", "promoted")
    if state.status not in allowed:
        fail(f"cannot {decision}: {_state_line(state)}", code=1)
    fraction = 1.0 if decision == "promote" else 0.0
    try:
        after = apply_decision(
            name,
            state,
            RolloutDecision(decision, reason, state.stage, fraction),  # type: ignore[arg-type]
            audit_path(cfg),
            actor="manual",
        )
    except (RolloutError, LookupError, ValueError) as exc:
        fail(str(exc), code=1)
    console.print(_state_line(after), highlight=False)
    if decision == "promote":
        console.print(f"version {state.canary_version} is champion; version {state.champion_version} is {PREVIOUS}")


@app.command("promote")
def promote(
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit)")] = "manual promotion",
    config: ConfigOption = None,
) -> None:
    """Promote the running canary now: it becomes champion, the old champion stays previous_champion."""
    _manual("promote", reason, config)


@app.command("rollback")
def rollback(
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit and tagged on the version)")] = "manual",
    config: ConfigOption = None,
) -> None:
    """Stop the running canary, or undo the last promotion (the previous champion returns)."""
    _manual("rollback", reason, config)


@app.command("traffic")
def traffic(
    url: Annotated[str, typer.Option(help="host:port of the model server's HTTP endpoint")] = "127.0.0.1:8080",
    requests: Annotated[int, typer.Option(help="Requests to send", min=1)] = 1000,
    k: Annotated[int, typer.Option(help="Titles asked per request", min=1)] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the user draws and responses")] = 0,
    shift_toward: Annotated[
        str | None, typer.Option(help="Drift scenario: tastes move toward this genre from the first request")
    ] = None,
    shift_fraction: Annotated[float, typer.Option(help="Share of users whose taste moves", min=0, max=1)] = 0.5,
    config: ConfigOption = None,
) -> None:
    """Simulated users (the simulator's world) call the model server and write their feedback to the events topic."""
    from rich.progress import Progress

    from flywheel.events.log import open_event_log
    from flywheel.serving.rollout_registry import read_state
    from flywheel.simulator.traffic import SimulatedUsers, TasteShift, http_recommender
    from flywheel.simulator.world import build_world

    cfg = _connect(config)
    state = read_state(cfg.training.model_name)
    shift = TasteShift(toward={shift_toward: 1.0}, users_fraction=shift_fraction) if shift_toward else None
    try:
        users = SimulatedUsers(build_world(cfg.simulator), seed=seed, realtime=True, taste_shift=shift)
    except ValueError as exc:
        fail(str(exc))
    recommend = http_recommender(url, model=cfg.serving.model_name, rollout_id=state.rollout_id)
    log = open_event_log(cfg.event_log)
    try:
        producer = log.producer(cfg.event_log.topics.events)
        with Progress(console=console) as progress:
            task = progress.add_task("simulated users calling the recommender", total=requests)
            summary = users.run(
                recommend, producer, requests=requests, k=k, progress=lambda d, _: progress.update(task, completed=d)
            )
        users.drain(producer)
    finally:
        log.close()
    console.print(
        f"{summary.requests} answered ({dict(summary.by_variant)}), {summary.failed} failed; "
        f"{summary.impressions} impressions, {summary.clicks} clicks (CTR {summary.ctr:.4f}), "
        f"{summary.watch_seconds / 3600:.1f} h watched",
        highlight=False,
    )
    if summary.last_error:
        console.print(f"last error: {summary.last_error}", highlight=False)
