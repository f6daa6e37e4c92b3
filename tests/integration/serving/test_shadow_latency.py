"""A slow, failing shadow leaves the answer's latency alone: p99 measured with and without it."""

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flywheel.serving.protocol import RecommendRequest
from flywheel.serving.recommender import Recommender
from flywheel.serving.router import Deployment, Router
from tests.support.recommender import static_features

pytestmark = pytest.mark.integration

SHADOW_DELAY_S = 2.0  # far above the noise of a shared machine: on the request path it could not hide


class _SlowFailingShadow(Recommender):
    calls = 0

    def recommend(self, *args, **kwargs):
        type(self).calls += 1
        time.sleep(SHADOW_DELAY_S)
        raise TimeoutError("shadow model timed out")


def _p99_ms(router: Router, users: list[str]) -> float:
    latencies = []
    for n, user in enumerate(users):
        start = time.perf_counter()
        router.answer(RecommendRequest(user, 10), f"req-{n}")
        latencies.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(latencies, 99))


def test_a_slow_failing_shadow_leaves_the_champions_p99_unchanged(served_bundle: tuple[Path, pd.DataFrame]) -> None:
    folder, window = served_bundle
    features = static_features(window)
    champion = Recommender.from_folder(folder, features=features, version="1")
    shadow = _SlowFailingShadow.from_folder(folder, features=features, version="2")
    users = [f"u{i:04d}" for i in range(120)]
    alone = Router(Deployment("recommender", champion))
    mirrored = Router(Deployment("recommender", champion, shadow=shadow), shadow_workers=2, shadow_queue=4)
    _p99_ms(alone, users[:20])  # warm-up
    # interleave the two conditions so that both see the same machine load
    p99_alone, p99_mirrored = [], []
    for block in range(4):
        part = users[block * 30 : (block + 1) * 30]
        p99_alone.append(_p99_ms(alone, part))
        p99_mirrored.append(_p99_ms(mirrored, part))
    mirrored.close()
    alone.close()
    assert _SlowFailingShadow.calls > 0  # the shadow really ran (and failed)
    # a shadow on the request path would add >= 2 s to every mirrored request
    assert np.median(p99_mirrored) < np.median(p99_alone) + SHADOW_DELAY_S * 1000 / 2, (p99_alone, p99_mirrored)
