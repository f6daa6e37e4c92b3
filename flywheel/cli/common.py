"""Pieces every command shares: the --config option, the console, error reporting."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from flywheel.config import ConfigError, FlywheelConfig, load_config

console = Console()
err_console = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Flywheel YAML configuration (default: the embedded defaults; ${ENV} is expanded).",
        envvar="FLYWHEEL_CONFIG",
        dir_okay=False,
    ),
]


def fail(message: str, code: int = 2) -> NoReturn:
    """Print an error for people and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def load(config_path: Path | None) -> FlywheelConfig:
    """Load the configuration for a command, turning errors into a clean exit."""
    try:
        return load_config(config_path)
    except ConfigError as exc:
        fail(str(exc))
