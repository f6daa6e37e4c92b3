"""The real-data path end to end, small: the benchmark's protocol on the first users of the
MovieLens fixture (``$FLYWHEEL_REAL_DATA`` or ``../shared/data/ml-latest-small``)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def _bench() -> object:
    spec = importlib.util.spec_from_file_location("bench_real_data", REPO / "bench" / "bench_real_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.integration
def test_imported_ratings_and_catalog_train_register_and_score(tmp_path: Path) -> None:
    bench = _bench()
    result = bench.run_protocol(40, tmp_path / "home")  # type: ignore[attr-defined]
    metrics = result["metrics"]
    # the gate read a real metric (the catalog view of imported data) and registered a champion
    assert metrics["view.logged"] == 0.0
    assert result["users"] >= 30
    for row in [*result["systems"].values(), *result["baselines"].values()]:
        assert all(math.isfinite(v) for v in row.values()), row
    assert result["systems"]["two stages (sources + ranker)"]["ndcg"] > 0
    assert math.isfinite(result["ratio"])
    import mlflow

    from flywheel.registry.mlflow_registry import version_by_alias

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}")
    mlflow.set_registry_uri(f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}")  # not an earlier test's registry
    champion = version_by_alias("flywheel-recommender", "champion")
    assert champion is not None
    # the item-to-item blend chosen in the ranker step travelled to the registered version
    from flywheel.models.bundle import ModelBundle
    from flywheel.models.stack import BLEND_GRID
    from flywheel.registry.mlflow_registry import download_bundle

    bundle = ModelBundle.load(download_bundle(champion.run_id, str(tmp_path / "champion")))
    assert bundle.ranker_config.source_blend in BLEND_GRID
