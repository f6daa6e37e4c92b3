"""Entry point of the ``flywheel`` command. Sub-commands live in their own modules."""

from __future__ import annotations

import typer

from flywheel import __version__
from flywheel.cli import experiments, features, log, monitor, pipeline, registry, rollout, serve, simulate, stream

app = typer.Typer(
    name="flywheel",
    help="Flywheel: the MLOps loop of a streaming platform's recommender.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
simulate.register(app)
stream.register(app)
serve.register(app)
app.add_typer(log.app, name="log")
app.add_typer(features.app, name="features")
app.add_typer(experiments.app, name="experiments")
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(registry.app, name="registry")
app.add_typer(monitor.app, name="monitor")
app.add_typer(rollout.app, name="rollout")


@app.command()
def version() -> None:
    """Print the Flywheel version."""
    typer.echo(__version__)


def main() -> None:
    """Run the command line."""
    app()


if __name__ == "__main__":
    main()
