"""Ranking on a real tritonserver (python backend, the exported TorchScript ranker) equals in-process ranking."""

import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flywheel.export.torchscript import export_bundle
from flywheel.models.bundle import ModelBundle
from flywheel.serving.client import recommend
from flywheel.serving.ranking import TritonRanker
from flywheel.serving.recommender import Recommender
from serving.triton import start_triton
from tests.support.recommender import static_features
from tests.support.services import ModelServer, free_port, model_server

pytestmark = pytest.mark.integration


def test_the_exported_repository_on_tritonserver_scores_like_the_in_process_ranker(
    served_bundle: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    folder, window = served_bundle
    bundle = ModelBundle.load(folder)
    catalog = pd.read_parquet(folder / "catalog.parquet")
    out = export_bundle(bundle, catalog, tmp_path / "export")
    triton = start_triton(out / "triton_python", tmp_path / "triton", http_port=free_port(), grpc_port=free_port())
    try:
        triton.wait_ready("ranker", 180)
        features = static_features(window)
        local = Recommender.from_folder(folder, features=features)
        remote_ranker = TritonRanker(triton.http_url, model_version="1")
        remote = Recommender.from_folder(folder, features=features, ranker=remote_ranker)
        for user in window["user_id"].astype(str).unique()[:5]:
            mine, theirs = local.recommend(user, 8), remote.recommend(user, 8)
            assert theirs.degraded == []
            assert theirs.items == mine.items
            np.testing.assert_allclose(theirs.scores, mine.scores, rtol=1e-5, atol=1e-6)
        # the raw ranker scores of one request's candidates, through Triton and in this process
        inputs = local.candidates(str(window["user_id"].iloc[0])).inputs
        np.testing.assert_allclose(remote_ranker.score(*inputs), local.in_process.score(*inputs), rtol=1e-5, atol=1e-6)
    finally:
        triton.stop()


def test_flywheel_serve_triton_answers_like_the_in_process_server(
    served_bundle: tuple[Path, pd.DataFrame], server: ModelServer, tmp_path: Path
) -> None:
    folder, _ = served_bundle
    with model_server(
        tmp_path / "home", "--bundle", str(folder), "--features", "none", "--triton", timeout_s=240
    ) as on_triton:
        users = [f"u{i:04d}" for i in range(5)]
        for user in users:
            a, b = recommend(server.http_url, user, k=6), recommend(on_triton.http_url, user, k=6)
            assert a.items == b.items
            np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-6)
        # concurrent requests run on several request threads, each with its own Triton client
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda n: recommend(on_triton.http_url, users[n % 5], k=6), range(40)))
        for n, answer in enumerate(answers):
            assert answer.items == recommend(server.http_url, users[n % 5], k=6).items
        log = on_triton.log_path.read_text()
        assert "ranker on Triton" in log
        with urllib.request.urlopen(f"http://{on_triton.http_url}/metrics") as response:
            metrics = response.read().decode()
        assert 'flywheel_serving_degraded_total{reason="triton"}' not in metrics  # no fallback happened
