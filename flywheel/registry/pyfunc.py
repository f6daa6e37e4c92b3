"""The pyfunc flavour of a registered version: ranker rows in, head probabilities and score out.

List-valued features (the genre vectors) travel as JSON text so the signature stays tabular.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from flywheel.config.training import HEAD_NAMES


def listify(frame: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``frame`` with JSON-text list columns turned back into lists."""
    out = frame.copy()
    for col in out.columns:
        if len(out) and isinstance(out[col].iloc[0], str) and out[col].iloc[0].startswith("["):
            out[col] = out[col].map(json.loads)
    return out


def jsonify(frame: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``frame`` with list-valued columns as JSON text (for the signature)."""
    out = frame.copy()
    for col in out.columns:
        if len(out) and not isinstance(out[col].iloc[0], str) and hasattr(out[col].iloc[0], "__len__"):
            out[col] = out[col].map(lambda v: json.dumps([x if isinstance(x, str) else float(x) for x in v]))
    return out


class RecommenderModel(PythonModel):
    """Scores ranker rows with a version's bundle (spec + ranker) and its catalog."""

    def load_context(self, context: Any) -> None:
        """Load the bundle shipped as the ``bundle`` artifact."""
        from flywheel.models.bundle import ModelBundle

        folder = Path(context.artifacts["bundle"])
        self.bundle = ModelBundle.load(folder)
        self.catalog = pd.read_parquet(folder / "catalog.parquet")

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        """Head probabilities ``p_<head>`` and the weighted ``score`` of each row."""
        from flywheel.models.ranker import combined_score, predict_heads

        probs = predict_heads(self.bundle.ranker, listify(model_input), self.catalog, self.bundle.spec)
        out = pd.DataFrame(probs, columns=[f"p_{h}" for h in HEAD_NAMES])
        out["score"] = combined_score(probs, self.bundle.ranker_config)
        return out
