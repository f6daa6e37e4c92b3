"""`flywheel experiments ...` (owned by the experimentation work)."""

import typer

app = typer.Typer(help="Experimentation: assignment, planning, analysis.", no_args_is_help=True)
