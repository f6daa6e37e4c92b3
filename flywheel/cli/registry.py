"""`flywheel registry ...`: the registered versions, promote a challenger, roll a champion back."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from flywheel.cli.common import ConfigOption, fail
from flywheel.cli.pipeline import training_config

app = typer.Typer(help="MLflow registry: versions, champion/challenger aliases, rollback.", no_args_is_help=True)


def _connect(config: Path | None) -> str:
    """Point MLflow at the configured tracking URI; return the registered model's name."""
    from flywheel.registry.mlflow_registry import connect

    section, _ = training_config(config)
    connect(section.tracking_uri, section.experiment, section.artifact_root)
    return section.model_name


@app.command("list")
def list_(config: ConfigOption = None) -> None:
    """Every registered version with its aliases and two-stage NDCG@10."""
    from mlflow import MlflowClient

    from flywheel.registry.mlflow_registry import aliases

    name = _connect(config)
    client = MlflowClient()
    versions = client.search_model_versions(f"name='{name}'")
    if not versions:
        fail(f"model {name!r} has no registered version yet: run `flywheel pipeline run training`", code=1)
    by_version: dict[str, list[str]] = {}
    for alias, version in aliases(name).items():
        by_version.setdefault(version, []).append(alias)
    table = Table(title=f"registered versions of {name}")
    for column in ("version", "aliases", "two_stage.ndcg@10", "run_id", "tags"):
        table.add_column(column)
    for mv in sorted(versions, key=lambda v: int(v.version)):
        metrics = client.get_run(mv.run_id).data.metrics if mv.run_id else {}
        ndcg = metrics.get("two_stage.ndcg_at_10")
        table.add_row(
            str(mv.version),
            ", ".join(sorted(by_version.get(str(mv.version), []))),
            "" if ndcg is None else f"{ndcg:.4f}",
            str(mv.run_id or ""),
            ", ".join(f"{k}={v}" for k, v in sorted((mv.tags or {}).items())),
        )
    Console(file=sys.stdout).print(table)


@app.command("promote")
def promote(
    ref: Annotated[str, typer.Argument(help="Version number or alias to make champion.")] = "challenger",
    config: ConfigOption = None,
) -> None:
    """Make a version (the challenger by default) the champion; the old one stays as previous_champion."""
    from flywheel.registry.mlflow_registry import promote as move

    name = _connect(config)
    try:
        done = move(name, ref)
    except (LookupError, ValueError) as exc:
        fail(str(exc), code=1)
    was = f"version {done.replaced} is previous_champion" if done.replaced else "there was no champion before"
    Console(file=sys.stdout).print(f"{name}: version {done.champion} is champion; {was}")


@app.command("rollback")
def rollback(
    reason: Annotated[str, typer.Option(help="Why (tagged on the demoted version).")] = "manual rollback",
    config: ConfigOption = None,
) -> None:
    """Give the champion alias back to the previous champion."""
    from flywheel.registry.mlflow_registry import rollback as back

    name = _connect(config)
    try:
        done = back(name, reason)
    except LookupError as exc:
        fail(str(exc), code=1)
    Console(file=sys.stdout).print(
        f"{name}: version {done.champion} is champion again; version {done.replaced} tagged rolled_back"
    )
