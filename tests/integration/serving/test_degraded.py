"""A feature store that is not there degrades every answer to default features, with a metric, never an error."""

import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from flywheel.serving.client import recommend
from tests.support.services import ModelServer, free_port, model_server

pytestmark = pytest.mark.integration


def test_no_feature_store_degrades_with_a_metric_and_answers_like_defaults(
    served_bundle: tuple[Path, pd.DataFrame], server: ModelServer, tmp_path: Path
) -> None:
    folder, _ = served_bundle
    # --features online with an empty home: the Feast registry has no feature views (an outage at start)
    with model_server(tmp_path / "home", "--bundle", str(folder), "--features", "online") as degraded:
        for user in ("u0001", "u0002", "someone-new"):
            got, defaults = recommend(degraded.http_url, user, k=5), recommend(server.http_url, user, k=5)
            assert got.items == defaults.items
        with urllib.request.urlopen(f"http://{degraded.http_url}/metrics") as response:
            text = response.read().decode()
    assert 'flywheel_serving_degraded_total{reason="feature_store"} 3.0' in text
    assert 'code="500"' not in text


def test_an_unreachable_triton_degrades_to_the_in_process_ranker_with_a_metric(
    served_bundle: tuple[Path, pd.DataFrame], server: ModelServer, tmp_path: Path
) -> None:
    folder, _ = served_bundle
    nobody = f"127.0.0.1:{free_port()}"  # nothing listens there
    env = {"FLYWHEEL_TRITON_URL": nobody}
    with model_server(tmp_path / "home", "--bundle", str(folder), "--features", "none", env=env) as degraded:
        for user in ("u0001", "u0007"):
            got, in_process = recommend(degraded.http_url, user, k=5), recommend(server.http_url, user, k=5)
            assert got.items == in_process.items
        with urllib.request.urlopen(f"http://{degraded.http_url}/metrics") as response:
            text = response.read().decode()
    assert 'flywheel_serving_degraded_total{reason="triton"} 2.0' in text
    assert 'code="500"' not in text
