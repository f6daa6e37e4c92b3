"""Compile every pipeline to YAML (the cluster form; the goldens under tests/golden/pipelines)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

PIPELINE_NAMES = ("training", "evaluation", "retraining")


def pipeline_function(name: str) -> Callable[..., Any]:
    """The pipeline function called ``name``.

    Raises:
        KeyError: Unknown pipeline name.
    """
    if name == "training":
        from pipelines.training import training

        return training
    if name == "evaluation":
        from pipelines.evaluation import evaluation

        return evaluation
    if name == "retraining":
        from pipelines.retraining import retraining

        return retraining
    raise KeyError(f"unknown pipeline {name!r}; pipelines are {', '.join(PIPELINE_NAMES)}")


def compile_pipeline(name: str, out_dir: str | Path) -> Path:
    """Compile one pipeline to ``<out_dir>/<name>.yaml``."""
    from kfp import compiler

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.yaml"
    compiler.Compiler().compile(pipeline_function(name), str(path))
    return path


def compile_all(out_dir: str | Path) -> list[Path]:
    """Compile every pipeline into ``out_dir``."""
    return [compile_pipeline(name, out_dir) for name in PIPELINE_NAMES]


if __name__ == "__main__":
    import sys

    for written in compile_all(sys.argv[1] if len(sys.argv) > 1 else "tests/golden/pipelines"):
        print(written)
