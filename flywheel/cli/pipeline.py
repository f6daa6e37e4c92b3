"""`flywheel pipeline ...` (owned by the training pipelines work)."""

import typer

app = typer.Typer(help="KFP pipelines: run locally with kfp.local, compile to YAML.", no_args_is_help=True)
