"""The recommend path: the library's scores, exclusions, cold start, degradation, spans."""

from pathlib import Path

import numpy as np
import pandas as pd
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flywheel.config.serving import RulesConfig
from flywheel.models.bundle import ModelBundle, score_candidates
from flywheel.models.contract import USER_DENSE, USER_VECTOR
from flywheel.serving.features import StaticFeatures
from flywheel.serving.recommender import Recommender


def _now(window: pd.DataFrame) -> pd.Timestamp:
    return window["event_timestamp"].max() + pd.Timedelta(hours=1)


def _known_user(window: pd.DataFrame) -> str:
    return str(window["user_id"].iloc[-1])


def test_scores_equal_the_librarys_two_stage_scores(bundle_dir: Path, window: pd.DataFrame, features) -> None:
    rec = Recommender.from_folder(bundle_dir, features=features, candidates=40)
    user, now = _known_user(window), _now(window)
    watched = [str(c) for c in window.loc[window["user_id"] == user, "content_id"].iloc[:3]]
    answer = rec.recommend(user, 8, watched, now=now)
    assert len(answer.items) == 8
    f = features.user(user)
    query = pd.DataFrame(
        [
            {
                "user_id": user,
                "device_type": f.device_type,
                **{n: f.dense[n] for n in USER_DENSE},
                USER_VECTOR: list(f.genre_affinity),
                "history": watched,
                "event_timestamp": now,
            }
        ]
    )
    bundle = ModelBundle.load(bundle_dir)
    catalog = pd.read_parquet(bundle_dir / "catalog.parquet")
    _, expected = score_candidates(bundle, query, np.zeros(len(answer.items)), np.array(answer.items), catalog, window)
    np.testing.assert_allclose(answer.scores, expected, rtol=1e-5, atol=1e-5)


def test_excluded_titles_are_never_returned_and_k_is_respected(bundle_dir: Path, window, features) -> None:
    rec = Recommender.from_folder(bundle_dir, features=features, candidates=40)
    first = rec.recommend(_known_user(window), 5, now=_now(window))
    again = rec.recommend(_known_user(window), 5, first.items[:3], now=_now(window))
    assert len(first.items) == 5 and len(again.items) == 5
    assert not set(first.items[:3]) & set(again.items)


def test_an_unknown_user_gets_cold_start_recommendations_without_degrading(bundle_dir: Path, window, features) -> None:
    rec = Recommender.from_folder(bundle_dir, features=features, candidates=40)
    answer = rec.recommend("nobody-knows-me", 6, now=_now(window))
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
    answer = Recommender.from_folder(bundle_dir, features=down, candidates=40).recommend(
        _known_user(window), 5, now=_now(window)
    )
    cold = Recommender.from_folder(bundle_dir, features=StaticFeatures(vector_dim=features.vector_dim), candidates=40)
    assert answer.degraded == ["feature_store"]
    assert answer.items == cold.recommend(_known_user(window), 5, now=_now(window)).items


def test_an_unreachable_ranker_degrades_to_the_in_process_ranker(bundle_dir: Path, window, features) -> None:
    remote = Recommender.from_folder(bundle_dir, features=features, candidates=40, ranker=_DownRanker())
    local = Recommender.from_folder(bundle_dir, features=features, candidates=40)
    answer = remote.recommend(_known_user(window), 5, now=_now(window))
    assert answer.degraded == ["triton"]
    assert answer.items == local.recommend(_known_user(window), 5, now=_now(window)).items


def test_new_releases_join_the_candidates(bundle_dir: Path, window, features) -> None:
    catalog = pd.read_parquet(bundle_dir / "catalog.parquet")
    now = pd.to_datetime(catalog["release_ts"], utc=True).max() + pd.Timedelta(days=1)
    with_fresh = Recommender.from_folder(bundle_dir, features=features, candidates=5)
    assert len(with_fresh.catalog.new_release_rows(now.value / 86_400e9, 14.0)) > 0
    without = Recommender.from_folder(
        bundle_dir, features=features, candidates=5, rules=RulesConfig(new_release_candidates=0)
    )
    assert without.recommend(_known_user(window), 5, now=now).candidates == 5
    assert with_fresh.recommend(_known_user(window), 5, now=now).candidates > 5


def test_spans_cover_request_features_retrieval_ranking_rules(bundle_dir: Path, window, features) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    rec = Recommender.from_folder(bundle_dir, features=features, candidates=40, tracer=provider.get_tracer("test"))
    rec.recommend(_known_user(window), 5, now=_now(window))
    spans = exporter.get_finished_spans()
    root = next(s for s in spans if s.name == "recommend")
    children = [s for s in spans if s.parent is not None and s.parent.span_id == root.context.span_id]
    assert [s.name for s in children] == ["features", "retrieval", "features", "ranking", "rules"]
    ranking = next(s for s in children if s.name == "ranking")
    assert ranking.attributes["ranking.backend"] == "in_process"
    assert root.attributes["model.version"] == "local"
