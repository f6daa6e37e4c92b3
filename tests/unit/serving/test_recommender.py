"""The recommend path: the library's scores, exclusions, cold start, degradation, spans."""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flywheel.config.serving import RulesConfig
from flywheel.models.bundle import ModelBundle
from flywheel.serving.features import StaticFeatures
from flywheel.serving.recommender import Recommender, is_tracing


def _known_user(window: pd.DataFrame) -> str:
    return str(window["user_id"].iloc[-1])


def test_scores_are_the_top_k_functions_scores(bundle_dir: Path, window: pd.DataFrame) -> None:
    """With the version's own features, no caps and the in-process ranker: the library's answer, exactly."""
    rec = Recommender.from_folder(
        bundle_dir,
        features=StaticFeatures(vector_dim=0),
        rules=RulesConfig(max_per_genre=1000, max_per_creator=1000),
    )
    user = _known_user(window)
    watched = [str(c) for c in window.loc[window["user_id"] == user, "content_id"].iloc[:3]]
    answer = rec.recommend(user, 8, watched)
    items, scores = rec.top_k.recommend(user, 8, watched)
    assert answer.items == items
    np.testing.assert_allclose(answer.scores, scores, rtol=1e-6)


def test_a_blended_version_serves_the_top_k_functions_two_stage_scores(bundle_dir: Path, window) -> None:
    """A version of imported data (engagements only) with an item-to-item blend: whichever backend
    scored the candidates, the served scores are the two-stage ones of the library."""
    bundle = ModelBundle.load(bundle_dir)
    state = bundle.state
    assert state is not None
    imported = replace(
        bundle,
        state=state[state["click"] > 0],
        ranker_config=bundle.ranker_config.model_copy(update={"source_blend": 1.0}),
    )
    rec = Recommender(
        imported,
        pd.read_parquet(bundle_dir / "catalog.parquet"),
        features=StaticFeatures(vector_dim=0),
        rules=RulesConfig(max_per_genre=1000, max_per_creator=1000),
    )
    assert rec.top_k.blend == 1.0
    user = _known_user(window)
    answer = rec.recommend(user, 8)
    items, scores = rec.top_k.recommend(user, 8)
    assert answer.items == items
    np.testing.assert_allclose(answer.scores, scores, rtol=1e-6)


def test_excluded_titles_are_never_returned_and_k_is_respected(bundle_dir: Path, window, features) -> None:
    rec = Recommender.from_folder(bundle_dir, features=features)
    first = rec.recommend(_known_user(window), 5)
    again = rec.recommend(_known_user(window), 5, first.items[:3])
    assert len(first.items) == 5 and len(again.items) == 5
    assert not set(first.items[:3]) & set(again.items)


def test_an_unknown_user_gets_cold_start_recommendations_without_degrading(bundle_dir: Path, window, features) -> None:
    rec = Recommender.from_folder(bundle_dir, features=features)
    answer = rec.recommend("nobody-knows-me", 6)
    assert len(answer.items) == 6
    assert answer.features["user_known"] == 0.0
    assert answer.degraded == []


class _DownStore(StaticFeatures):
    def user(self, user_id: str):
        raise ConnectionError("redis: connection refused")


class _DownRanker:
    name = "triton"

    def score(self, sparse, dense, history):
        raise ConnectionError("triton unreachable")


def test_a_feature_store_outage_degrades_to_defaults(bundle_dir: Path, window, features) -> None:
    down = _DownStore(vector_dim=features.vector_dim)
    answer = Recommender.from_folder(bundle_dir, features=down).recommend(_known_user(window), 5)
    cold = Recommender.from_folder(bundle_dir, features=StaticFeatures(vector_dim=features.vector_dim))
    assert answer.degraded == ["feature_store"]
    assert answer.items == cold.recommend(_known_user(window), 5).items


def test_an_unreachable_ranker_degrades_to_the_in_process_ranker(bundle_dir: Path, window, features) -> None:
    remote = Recommender.from_folder(bundle_dir, features=features, ranker=_DownRanker())
    local = Recommender.from_folder(bundle_dir, features=features)
    answer = remote.recommend(_known_user(window), 5)
    assert answer.degraded == ["triton"]
    assert answer.items == local.recommend(_known_user(window), 5).items


def test_spans_cover_request_features_retrieval_ranking_rules(bundle_dir: Path, window, features) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    rec = Recommender.from_folder(bundle_dir, features=features, tracer=provider.get_tracer("test"))
    rec.recommend(_known_user(window), 5)
    spans = exporter.get_finished_spans()
    root = next(s for s in spans if s.name == "recommend")
    children = [s for s in spans if s.parent is not None and s.parent.span_id == root.context.span_id]
    assert [s.name for s in children] == ["features", "retrieval", "features", "ranking", "rules"]
    ranking = next(s for s in children if s.name == "ranking")
    assert ranking.attributes["ranking.backend"] == "in_process"
    assert root.attributes["model.version"] == "local"


def test_the_steps_on_different_threads_make_one_trace(bundle_dir: Path, window, features) -> None:
    """As the server runs them: prepare and rank on request threads, finish on the event loop."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    rec = Recommender.from_folder(bundle_dir, features=features, tracer=provider.get_tracer("test"))
    with ThreadPoolExecutor(2) as pool:
        prepared = pool.submit(rec.prepare, _known_user(window), 5).result()
        assert "recommend" not in {s.name for s in exporter.get_finished_spans()}  # open until finish
        pool.submit(rec.rank, prepared).result()
    answer = rec.finish(prepared)
    spans = exporter.get_finished_spans()
    (root,) = [s for s in spans if s.name == "recommend"]
    children = [s.name for s in spans if s.parent is not None and s.parent.span_id == root.context.span_id]
    assert children == ["features", "retrieval", "features", "ranking", "rules"]
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}
    assert answer.items == rec.recommend(_known_user(window), 5).items


def test_spans_are_opened_only_where_a_tracer_provider_receives_them(monkeypatch) -> None:
    assert is_tracing(TracerProvider().get_tracer("sdk"))
    assert not is_tracing(trace.NoOpTracer())
    proxy = trace.ProxyTracer("flywheel.serving")  # what trace.get_tracer gives before any provider is set
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: trace.ProxyTracerProvider())
    assert not is_tracing(proxy)
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: TracerProvider())  # set later: the proxy delegates
    assert is_tracing(proxy)


def test_without_tracing_the_stages_are_still_timed(bundle_dir: Path, window, features) -> None:
    rec = Recommender.from_folder(bundle_dir, features=features, tracer=trace.NoOpTracer())
    answer = rec.recommend(_known_user(window), 5)
    assert sorted(answer.stage_seconds) == ["features", "ranking", "retrieval", "rules"]
    assert all(seconds > 0 for seconds in answer.stage_seconds.values())


class _Reader:
    """The slice of OnlineFeatureReader that OnlineFeatures uses."""

    item_columns = (
        "content_total_plays_7d",
        "content_avg_completion_rate",
        "content_release_recency_days",
        "content_avg_rating",
        "content_play_to_impression_ratio",
        "user_x_content_genre_overlap",
    )

    def read_user(self, user_id: str):
        if user_id != "u1":
            return {}, False
        return {
            "user_total_watch_hours_7d": 2.0,
            "user_skip_rate_7d": 0.25,
            "user_content_completion_rate_30d": 0.5,
            "user_genre_affinity_vector": [0.5, 0.5, 0.0],
            "user_device_preference": "tv",
        }, True

    def read(self, user_id: str, content_ids):
        class _Features:
            items = np.array([[float(i), 0.5, 9.0, 4.0, 0.1, 0.3] for i, _ in enumerate(content_ids)])
            content_known = np.array([c != "unknown" for c in content_ids])

        return _Features()


def test_online_features_map_the_store_rows_onto_the_contract() -> None:
    from flywheel.serving.features import OnlineFeatures

    source = OnlineFeatures(_Reader(), vector_dim=4)  # type: ignore[arg-type]
    user = source.user("u1")
    assert user.known and user.device_type == "tv"
    assert dict(user.dense) == {
        "user_total_watch_hours_7d": 2.0,
        "user_skip_rate_7d": 0.25,
        "user_content_completion_rate_30d": 0.5,
    }
    assert user.genre_affinity == (0.5, 0.5, 0.0, 0.0)
    assert not source.user("stranger").known
    # CONTENT_DENSE order: plays, completion, recency, play-to-impression
    np.testing.assert_array_equal(
        source.content(["a", "b", "unknown"]), [[0.0, 0.5, 9.0, 0.1], [1.0, 0.5, 9.0, 0.1], [np.nan] * 4]
    )
