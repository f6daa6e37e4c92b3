"""The ``flywheel`` command line (Typer + Rich)."""
