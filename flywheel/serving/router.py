"""The router: champion or canary answers (sticky by user), the shadow gets a copy, every answer is logged.

The shadow's copy runs on its own small thread pool after the answer is computed: its result is
logged and compared with the answer (rank overlap, score deltas) but never returned, and the
request never waits for it. When the pool is busy (``shadow_queue`` copies in flight) a copy is
dropped and counted as a shadow error rather than queued without bound.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from flywheel.serving.prediction_log import PredictionRecord, PredictionWriter
from flywheel.serving.protocol import RecommendRequest
from flywheel.serving.recommender import Prepared, Recommendation, Recommender
from flywheel.serving.routing import NO_ROLLOUT, RolloutState, Variant, assign_variant


@dataclass(frozen=True)
class Deployment:
    """The versions serving now; swapped whole when the registry moves."""

    model_name: str
    champion: Recommender
    canary: Recommender | None = None
    shadow: Recommender | None = None
    rollout: RolloutState = NO_ROLLOUT

    def variant_for(self, user_id: str) -> Variant:
        """Who answers ``user_id``: the canary only while a rollout runs and a canary is loaded."""
        if self.canary is None:
            return "champion"
        return assign_variant(user_id, self.rollout.rollout_id, self.rollout.canary_fraction)

    def versions(self) -> dict[str, str]:
        """{variant: version} of the loaded variants."""
        out = {"champion": self.champion.version}
        if self.canary is not None:
            out["canary"] = self.canary.version
        if self.shadow is not None:
            out["shadow"] = self.shadow.version
        return out


@dataclass(frozen=True, slots=True)
class ShadowComparison:
    """How the shadow's list differs from the answer's."""

    overlap: float
    """Share of the answer's titles that the shadow also returned (1.0: the same set)."""
    mean_abs_score_delta: float | None
    """Mean |score difference| over the titles both returned (None when they share none)."""


def compare_lists(
    items: Sequence[str], scores: Sequence[float], shadow_items: Sequence[str], shadow_scores: Sequence[float]
) -> ShadowComparison:
    """Rank overlap and score deltas of two answers to one request."""
    if not items:
        return ShadowComparison(1.0 if not shadow_items else 0.0, None)
    theirs = dict(zip(shadow_items, shadow_scores, strict=True))
    common = [(s, theirs[i]) for i, s in zip(items, scores, strict=True) if i in theirs]
    delta = sum(abs(a - b) for a, b in common) / len(common) if common else None
    return ShadowComparison(len(common) / len(items), delta)


@dataclass(frozen=True)
class Routed:
    """A request on its way through :meth:`Router.start`, :meth:`~Router.rank` and :meth:`~Router.finish`:
    the deployment and variant it was routed to, kept to the end even if the deployment is swapped."""

    deployment: Deployment
    variant: Variant
    model: Recommender
    request: RecommendRequest
    request_id: str
    start: float
    """``time.perf_counter()`` when it was routed (the answer's latency counts from here)."""
    prepared: Prepared


@dataclass(frozen=True)
class Answer:
    """What the request gets back."""

    request_id: str
    variant: Variant
    model_version: str
    rollout_id: str | None
    recommendation: Recommendation
    latency_ms: float


class ServingObserver(Protocol):
    """Receives what the router did (metrics live in the adapter, not here)."""

    def answered(self, answer: Answer) -> None:
        """A request was answered."""

    def shadowed(self, comparison: ShadowComparison | None, error: str | None) -> None:
        """A shadow copy finished (comparison) or failed / was dropped (error)."""


class _NoObserver:
    def answered(self, answer: Answer) -> None:
        pass

    def shadowed(self, comparison: ShadowComparison | None, error: str | None) -> None:
        pass


class Router:
    """Answers requests with the live :class:`Deployment`; mirrors them to the shadow; logs every answer."""

    def __init__(
        self,
        deployment: Deployment,
        *,
        writer: PredictionWriter | None = None,
        observer: ServingObserver | None = None,
        shadow_workers: int = 1,
        shadow_queue: int = 64,
    ) -> None:
        self.deployment = deployment
        self.writer = writer
        self.observer = observer or _NoObserver()
        self._pool = ThreadPoolExecutor(max_workers=shadow_workers, thread_name_prefix="shadow")
        self._shadow_slots = threading.BoundedSemaphore(shadow_queue)

    def swap(self, deployment: Deployment) -> None:
        """Serve ``deployment`` from the next request on (one reference swap)."""
        self.deployment = deployment

    def answer(self, request: RecommendRequest, request_id: str) -> Answer:
        """The answer of the user's variant (:meth:`start`, :meth:`rank`, :meth:`finish` in turn);
        the shadow (if any) gets a copy afterwards."""
        routed = self.start(request, request_id)
        self.rank(routed)
        return self.finish(routed)

    def start(self, request: RecommendRequest, request_id: str) -> Routed:
        """Route the request to the user's variant in the live deployment and prepare it there
        (features and candidates: :meth:`Recommender.prepare`)."""
        deployment = self.deployment
        start = time.perf_counter()
        variant = deployment.variant_for(request.user_id)
        model = deployment.canary if variant == "canary" and deployment.canary is not None else deployment.champion
        prepared = model.prepare(request.user_id, request.k, request.exclude)
        return Routed(deployment, variant, model, request, request_id, start, prepared)

    def rank(self, routed: Routed) -> None:
        """Rank the routed request's candidates on its version (:meth:`Recommender.rank`)."""
        routed.model.rank(routed.prepared)

    def finish(self, routed: Routed) -> Answer:
        """Apply the business rules (:meth:`Recommender.finish`), log the answer and mirror the
        request to the shadow, which the answer never waits for."""
        deployment, model, request, request_id = routed.deployment, routed.model, routed.request, routed.request_id
        recommendation = model.finish(routed.prepared)
        latency_ms = (time.perf_counter() - routed.start) * 1000.0
        answer = Answer(
            request_id, routed.variant, model.version, deployment.rollout.live_id, recommendation, latency_ms
        )
        self._log(deployment, answer.variant, model.version, request, request_id, recommendation, latency_ms, None)
        self.observer.answered(answer)
        if deployment.shadow is not None:
            self._mirror(deployment, deployment.shadow, request, request_id, recommendation)
        return answer

    def _log(
        self,
        deployment: Deployment,
        variant: Variant,
        version: str,
        request: RecommendRequest,
        request_id: str,
        recommendation: Recommendation | None,
        latency_ms: float,
        error: str | None,
    ) -> None:
        if self.writer is None:
            return
        self.writer.log(
            PredictionRecord(
                request_id=request_id,
                timestamp_ms=int(time.time() * 1000),
                user_id=request.user_id,
                model_name=deployment.model_name,
                model_version=version,
                variant=variant,
                rollout_id=deployment.rollout.live_id,
                features=recommendation.features if recommendation else {},
                items=recommendation.items if recommendation else [],
                scores=recommendation.scores if recommendation else [],
                latency_ms=latency_ms,
                error=error,
            )
        )

    def _mirror(
        self,
        deployment: Deployment,
        shadow: Recommender,
        request: RecommendRequest,
        request_id: str,
        served: Recommendation,
    ) -> None:
        if not self._shadow_slots.acquire(blocking=False):
            self.observer.shadowed(None, "dropped: shadow queue full")
            return

        def run() -> None:
            start = time.perf_counter()
            try:
                result = shadow.recommend(request.user_id, request.k, request.exclude)
            except Exception as exc:  # noqa: BLE001 - a failing shadow is logged, never raised
                error = f"{type(exc).__name__}: {exc}"[:500]
                self._log(
                    deployment,
                    "shadow",
                    shadow.version,
                    request,
                    request_id,
                    None,
                    (time.perf_counter() - start) * 1000.0,
                    error,
                )
                self.observer.shadowed(None, error)
                return
            finally:
                self._shadow_slots.release()
            latency_ms = (time.perf_counter() - start) * 1000.0
            self._log(deployment, "shadow", shadow.version, request, request_id, result, latency_ms, None)
            self.observer.shadowed(compare_lists(served.items, served.scores, result.items, result.scores), None)

        self._pool.submit(run)

    def close(self) -> None:
        """Wait for the shadow copies in flight and stop the pool."""
        self._pool.shutdown(wait=True)
