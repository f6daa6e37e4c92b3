"""The router: sticky canary answers, shadow copies logged and compared but never returned."""

from pathlib import Path

import pytest

from flywheel.events.local_log import LocalEventLog
from flywheel.serving.prediction_log import PredictionWriter, read_predictions
from flywheel.serving.protocol import RecommendRequest
from flywheel.serving.recommender import Recommender
from flywheel.serving.router import Answer, Deployment, Router, ShadowComparison, compare_lists
from flywheel.serving.routing import RolloutState, assign_variant


class _Seen:
    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.shadows: list[tuple[ShadowComparison | None, str | None]] = []

    def answered(self, answer: Answer) -> None:
        self.answers.append(answer)

    def shadowed(self, comparison, error) -> None:
        self.shadows.append((comparison, error))


class _Broken(Recommender):
    def recommend(self, *args, **kwargs):
        raise RuntimeError("shadow model exploded")


def test_compare_lists() -> None:
    same = compare_lists(["a", "b"], [1.0, 0.5], ["b", "a"], [0.5, 1.0])
    assert same == ShadowComparison(1.0, 0.0)
    half = compare_lists(["a", "b"], [1.0, 0.5], ["a", "z"], [0.75, 0.1])
    assert half == ShadowComparison(0.5, 0.25)
    assert compare_lists(["a"], [1.0], ["z"], [1.0]) == ShadowComparison(0.0, None)


@pytest.fixture(scope="module")
def models(bundle_dir: Path, features) -> dict[str, Recommender]:
    return {
        "v1": Recommender.from_folder(bundle_dir, features=features, version="1"),
        "v2": Recommender.from_folder(bundle_dir, features=features, version="2"),
    }


def test_canary_users_get_the_canary_version_and_everything_is_logged(tmp_path, models) -> None:
    rollout = RolloutState("r-9", 0.5, 2, "running")
    log = LocalEventLog(tmp_path / "log", partitions=2)
    writer = PredictionWriter(log.producer("predictions"), flush_ms=10)
    seen = _Seen()
    router = Router(
        Deployment("recommender", models["v1"], canary=models["v2"], rollout=rollout), writer=writer, observer=seen
    )
    users = [f"u{i:04d}" for i in range(40)]
    answers = {u: router.answer(RecommendRequest(u, 4), f"req-{u}") for u in users}
    router.close()
    writer.close()
    for user, answer in answers.items():
        expected = assign_variant(user, "r-9", 0.5)
        assert answer.variant == expected
        assert answer.model_version == ("2" if expected == "canary" else "1")
    assert {a.variant for a in answers.values()} == {"champion", "canary"}
    records = {r.request_id: r for r in read_predictions(log)}
    assert set(records) == {f"req-{u}" for u in users}
    for user, answer in answers.items():
        record = records[f"req-{user}"]
        assert (record.variant, record.model_version, record.rollout_id) == (
            answer.variant,
            answer.model_version,
            "r-9",
        )
        assert list(record.items) == answer.recommendation.items
    assert len(seen.answers) == len(users)


def test_a_rollout_that_is_not_running_sends_everyone_to_the_champion(models) -> None:
    rollout = RolloutState("r-9", 0.5, 2, "rolled_back")
    router = Router(Deployment("recommender", models["v1"], canary=models["v2"], rollout=rollout))
    answers = [router.answer(RecommendRequest(f"u{i}", 3), f"q{i}") for i in range(30)]
    assert {a.variant for a in answers} == {"champion"}
    assert {a.rollout_id for a in answers} == {None}  # not part of the ended rollout's evidence
    router.close()


def test_the_shadow_is_logged_and_compared_never_returned(tmp_path, models) -> None:
    log = LocalEventLog(tmp_path / "log", partitions=2)
    writer = PredictionWriter(log.producer("predictions"), flush_ms=10)
    seen = _Seen()
    router = Router(Deployment("recommender", models["v1"], shadow=models["v2"]), writer=writer, observer=seen)
    answer = router.answer(RecommendRequest("u0001", 5), "req-1")
    router.close()
    writer.close()
    assert answer.variant == "champion" and answer.model_version == "1"
    records = sorted(read_predictions(log), key=lambda r: r.variant)
    assert [(r.variant, r.model_version, r.request_id) for r in records] == [
        ("champion", "1", "req-1"),
        ("shadow", "2", "req-1"),
    ]
    ((comparison, error),) = seen.shadows
    assert error is None and comparison is not None
    assert comparison == compare_lists(
        answer.recommendation.items, answer.recommendation.scores, records[1].items, records[1].scores
    )


def test_a_failing_shadow_is_logged_with_its_error_and_the_answer_stands(
    tmp_path, bundle_dir, features, models
) -> None:
    broken = _Broken.from_folder(bundle_dir, features=features, version="9")
    log = LocalEventLog(tmp_path / "log", partitions=2)
    writer = PredictionWriter(log.producer("predictions"), flush_ms=10)
    seen = _Seen()
    router = Router(Deployment("recommender", models["v1"], shadow=broken), writer=writer, observer=seen)
    answer = router.answer(RecommendRequest("u0001", 5), "req-1")
    router.close()
    writer.close()
    assert len(answer.recommendation.items) == 5
    shadow = next(r for r in read_predictions(log) if r.variant == "shadow")
    assert shadow.error == "RuntimeError: shadow model exploded" and list(shadow.items) == []
    assert seen.shadows == [(None, "RuntimeError: shadow model exploded")]
