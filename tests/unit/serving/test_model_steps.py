"""The KServe model's three steps: preprocess prepares, predict ranks, postprocess applies the rules."""

import asyncio
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from kserve import InferInput, InferRequest
from kserve.errors import InvalidInput

from flywheel.serving.features import StaticFeatures
from flywheel.serving.recommender import Recommender
from flywheel.serving.router import Deployment, Router
from monitoring.metrics import REGISTRY
from serving.model import RecommenderModel
from serving.observer import PrometheusObserver


def _request(user: str, k: int) -> InferRequest:
    user_in = InferInput("user_id", [1], "BYTES", data=[user])
    k_in = InferInput("k", [1], "INT32", data=[k])
    return InferRequest("recommender", [user_in, k_in], request_id="r-1")


@pytest.fixture(scope="module")
def model(bundle_dir: Path, features: StaticFeatures) -> RecommenderModel:
    champion = Recommender.from_folder(bundle_dir, features=features)
    router = Router(Deployment("recommender", champion))
    return RecommenderModel(
        "recommender", router, default_k=10, max_k=100, max_exclude=100, observer=PrometheusObserver()
    )


def test_each_step_does_its_part_and_the_answer_is_the_recommenders(
    model: RecommenderModel, window: pd.DataFrame
) -> None:
    user = str(window["user_id"].iloc[-1])
    main = threading.get_ident()

    async def steps() -> tuple[object, object, object, object]:
        flight = await model.preprocess(_request(user, 5))
        (routed,) = flight.routed
        prepared_scores = routed.prepared.scores  # prepared, not ranked yet
        ranked = await model.predict(flight)
        scores = routed.prepared.scores
        return prepared_scores, routed, scores, model.postprocess(ranked)

    prepared_scores, routed, scores, response = asyncio.run(steps())
    assert prepared_scores is None
    assert len(routed.prepared.ids) > 0 and routed.prepared.request.rows.size == len(routed.prepared.ids)
    assert scores is not None and len(scores) == len(routed.prepared.ids)
    assert threading.get_ident() == main  # postprocess ran here, on the caller's (the event loop's) thread
    items = response.outputs[0].data
    expected = model.router.deployment.champion.recommend(user, 5)
    assert items == expected.items
    np.testing.assert_allclose(response.outputs[1].data, expected.scores, rtol=1e-6)
    assert response.parameters["request_id"] == "r-1" and response.parameters["variant"] == "champion"


def test_preprocess_rejects_a_broken_request_before_any_work(model: RecommenderModel) -> None:
    broken = InferRequest("recommender", [InferInput("k", [1], "INT32", data=[3])], request_id="r-2")
    with pytest.raises(InvalidInput, match="missing input 'user_id'"):
        asyncio.run(model.preprocess(broken))


def _where_steps_run(model: RecommenderModel, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Record (step, thread name) each time the router prepares or ranks a request."""
    seen: list[tuple[str, str]] = []
    router = model.router
    start, rank = router.start, router.rank

    def start_here(*args: Any) -> Any:
        seen.append(("start", threading.current_thread().name))
        return start(*args)

    def rank_here(*args: Any) -> None:
        seen.append(("rank", threading.current_thread().name))
        rank(*args)

    monkeypatch.setattr(router, "start", start_here)
    monkeypatch.setattr(router, "rank", rank_here)
    return seen


async def _answer(model: RecommenderModel, user: str) -> Any:
    return model.postprocess(await model.predict(await model.preprocess(_request(user, 3))))


def test_by_default_the_event_loop_prepares_and_ranks(
    model: RecommenderModel, window: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _where_steps_run(model, monkeypatch)
    asyncio.run(_answer(model, str(window["user_id"].iloc[0])))
    loop_thread = threading.current_thread().name
    assert seen == [("start", loop_thread), ("rank", loop_thread)]


@pytest.mark.parametrize(
    ("prepare_on_threads", "on_threads"), [(True, {"start", "rank"}), (False, {"rank"})], ids=["both", "ranking"]
)
def test_with_request_threads_those_steps_run_on_them_and_answers_stay_the_same(
    bundle_dir: Path,
    features: StaticFeatures,
    window: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
    prepare_on_threads: bool,
    on_threads: set[str],
) -> None:
    champion = Recommender.from_folder(bundle_dir, features=features)
    model = RecommenderModel(
        "recommender",
        Router(Deployment("recommender", champion)),
        default_k=10,
        max_k=100,
        max_exclude=100,
        observer=PrometheusObserver(),
        threads=2,
        prepare_on_threads=prepare_on_threads,
    )
    seen = _where_steps_run(model, monkeypatch)
    users = [str(u) for u in window["user_id"].unique()[:4]]

    async def together() -> list[Any]:
        return await asyncio.gather(*(_answer(model, user) for user in users))

    answers = asyncio.run(together())
    loop_thread = threading.current_thread().name
    assert sorted(step for step, _ in seen) == ["rank"] * 4 + ["start"] * 4
    for step, thread in seen:
        assert thread.startswith("recommend") if step in on_threads else thread == loop_thread
    for user, answer in zip(users, answers, strict=True):
        assert answer.outputs[0].data == champion.recommend(user, 3).items


@pytest.mark.parametrize("threads", [0, 2], ids=["event_loop", "threads"])
def test_a_failing_step_is_an_internal_error_on_the_loop_or_a_thread(
    bundle_dir: Path, features: StaticFeatures, window: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    model = RecommenderModel(
        "recommender",
        Router(Deployment("recommender", Recommender.from_folder(bundle_dir, features=features))),
        default_k=10,
        max_k=100,
        max_exclude=100,
        observer=PrometheusObserver(),
        threads=threads,
    )

    def broken(*args: Any) -> None:
        raise RuntimeError("ranker broke")

    monkeypatch.setattr(model.router, "rank", broken)
    before = _internal_errors()
    with pytest.raises(RuntimeError, match="ranker broke"):
        asyncio.run(_answer(model, str(window["user_id"].iloc[0])))
    assert _internal_errors() == before + 1


def _internal_errors() -> float:
    return REGISTRY.get_sample_value("flywheel_serving_errors_total", {"variant": "none", "kind": "internal"}) or 0.0
