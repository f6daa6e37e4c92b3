"""`flywheel features ...` (owned by the feature platform work)."""

import typer

app = typer.Typer(help="Feature platform: backfill, materialize, training sets.", no_args_is_help=True)
