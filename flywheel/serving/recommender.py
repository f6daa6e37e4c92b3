"""The recommend path of one model version: features -> candidates -> ranking -> business rules.

The candidates and the ranker's inputs come from the model version's one top-K function,
:class:`flywheel.models.stack.Recommender` (built once per version at load: item embeddings, the
item-to-item weights, the training state), one request at a time through its
:class:`~flywheel.models.request_path.RequestPath`: the sources (two-tower, item-to-item, popular
now, new releases) propose titles, and the ranker's inputs (user, content, cross and source
features) are built as the batch path builds them, without its full-catalog sorts and frames.
What serving adds around it:

* the user's features come from the feature platform's online store when it knows the user, and
  the candidates' content features too (fresher than the version's training snapshot);
* the ranker runs on a :class:`~flywheel.serving.ranking.RankerBackend`: in-process, or on a Triton
  predictor, with a fallback to in-process when the predictor fails;
* the business rules (:mod:`flywheel.serving.rules`) pick the returned list;
* each stage is timed and traced (OpenTelemetry spans ``recommend`` -> ``features``,
  ``retrieval``, ``ranking``, ``rules``);
* a request goes in three steps, :meth:`Recommender.prepare` (features, candidates),
  :meth:`~Recommender.rank` and :meth:`~Recommender.finish` (rules), which may run on different
  threads (the KServe model's preprocess, predict and postprocess); :meth:`~Recommender.recommend`
  takes them in turn.

With the in-process backend and the version's own features, the scores are exactly the top-K
function's (a unit test pins them).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from opentelemetry import trace

from flywheel.config.serving import RulesConfig
from flywheel.models.bundle import ModelBundle
from flywheel.models.request_path import RequestCandidates, UserQuery
from flywheel.models.sources import release_age_days
from flywheel.models.stack import Recommender as TopK
from flywheel.serving.features import FeatureSource, UserFeatures
from flywheel.serving.ranking import InProcessRanker, RankerBackend
from flywheel.serving.rules import RuleLimits, apply_rules

STAGES = ("features", "retrieval", "ranking", "rules")


@dataclass
class Recommendation:
    """The answer of one version to one request, with what it took."""

    items: list[str]
    scores: list[float]
    features: dict[str, float | str]
    """The features the request was ranked with (for the prediction log)."""
    candidates: int
    stage_seconds: dict[str, float] = field(default_factory=dict)
    degraded: list[str] = field(default_factory=list)
    """Reasons the answer is degraded (``feature_store``, ``triton``), empty when it is not."""


@dataclass(frozen=True)
class Candidates:
    """The ranker's view of one request: the titles and their encoded inputs."""

    content_ids: np.ndarray
    inputs: tuple[np.ndarray, np.ndarray, np.ndarray]
    """(sparse ids, dense features, history ids) as the ranker (and Triton) reads them."""


@dataclass(eq=False)
class Prepared:
    """One request between its steps (:meth:`Recommender.prepare`, :meth:`~Recommender.rank`,
    :meth:`~Recommender.finish`), which may run on different threads."""

    k: int
    exclude: tuple[str, ...]
    as_of_ms: int
    root: trace.Span
    """The request's ``recommend`` span (``INVALID_SPAN`` when nothing receives spans)."""
    tracing: bool
    user: UserFeatures | None
    """The online store's features of the user (None when the store failed)."""
    request: RequestCandidates
    ids: np.ndarray
    """The candidates' content ids."""
    content: np.ndarray | None
    """The candidates' content features from the store (None: the version's own)."""
    stage_seconds: dict[str, float]
    degraded: list[str]
    scores: np.ndarray | None = None
    """The candidates' two-stage scores, once ranked."""


def is_tracing(tracer: trace.Tracer) -> bool:
    """Whether spans of ``tracer`` go anywhere: an SDK tracer, or the API's proxy once a tracer
    provider is set. Without one, a request opens no span at all (the API's no-op spans took 6 %
    of the time the request threads held the GIL at 8 clients, py-spy --gil, 2026-12-03)."""
    if isinstance(tracer, trace.ProxyTracer):
        return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    return not isinstance(tracer, trace.NoOpTracer)


class _Stage:
    """Times one stage of a request into ``timings`` and, with a tracer, opens its span."""

    __slots__ = ("attributes", "name", "opened", "start", "timings", "tracer")

    def __init__(
        self, name: str, timings: dict[str, float], tracer: trace.Tracer | None, attributes: dict[str, Any]
    ) -> None:
        self.name, self.timings, self.tracer, self.attributes = name, timings, tracer, attributes
        self.opened: Any = None
        self.start = 0.0

    def __enter__(self) -> trace.Span:
        self.start = time.perf_counter()
        if self.tracer is None:
            return trace.INVALID_SPAN
        self.opened = self.tracer.start_as_current_span(self.name, attributes=self.attributes)
        return self.opened.__enter__()

    def __exit__(self, *exc: Any) -> None:
        if self.opened is not None:
            self.opened.__exit__(*exc)
        self.timings[self.name] = self.timings.get(self.name, 0.0) + time.perf_counter() - self.start


def _first(genres: Any) -> str:
    if isinstance(genres, list | tuple | np.ndarray) and len(genres):
        return str(genres[0])
    return ""


class Recommender:
    """One model version ready to answer: its top-K function, a feature source, a ranker backend, rules."""

    def __init__(
        self,
        bundle: ModelBundle,
        catalog: pd.DataFrame,
        *,
        features: FeatureSource,
        version: str = "local",
        ranker: RankerBackend | None = None,
        rules: RulesConfig | None = None,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.bundle = bundle
        self.top_k = TopK(bundle, catalog=catalog)
        self.path = self.top_k.request_path
        self.catalog = self.top_k.catalog
        self.features = features
        self.version = version
        self.in_process = InProcessRanker(self.path)
        self.ranker: RankerBackend = ranker or self.in_process
        self.rules = rules or RulesConfig()
        self.tracer = tracer or trace.get_tracer("flywheel.serving")
        self.primary_genre = np.array([_first(g) for g in self.catalog["genres"]], dtype=object)
        self.creator = self.catalog["creator_id"].fillna("").astype(str).to_numpy(dtype=object)

    @classmethod
    def from_folder(cls, folder: str | Path, **kwargs: Any) -> Recommender:
        """Load a bundle folder (ModelBundle files + ``catalog.parquet``)."""
        folder = Path(folder)
        catalog_path = folder / "catalog.parquet"
        if not catalog_path.exists():
            raise FileNotFoundError(f"{folder}: the bundle has no catalog.parquet")
        return cls(ModelBundle.load(folder), pd.read_parquet(catalog_path), **kwargs)

    # -- the pieces --------------------------------------------------------------------------

    def query(self, user_id: str, user: UserFeatures | None, as_of_ms: int | None = None) -> UserQuery:
        """The top-K function's query, with the online store's user features when it knows the user."""
        query = self.path.query(user_id, as_of_ms)
        if user is not None and user.known:
            query = query.with_features(user.dense, user.genre_affinity, user.device_type)
        return query

    def candidates(self, user_id: str, exclude: Sequence[str] = (), *, as_of_ms: int | None = None) -> Candidates:
        """The merged candidates of the sources for a user (with the version's own features) and their inputs."""
        request = self.path.candidates(self.query(user_id, None, as_of_ms), exclude)
        return Candidates(self.top_k.content_ids[request.rows], self.path.ranker_inputs(request))

    # -- the request path -------------------------------------------------------------------

    def _stage(self, name: str, timings: dict[str, float], tracing: bool, **attributes: Any) -> _Stage:
        return _Stage(name, timings, self.tracer if tracing else None, attributes)

    def recommend(
        self, user_id: str, k: int, exclude: Sequence[str] = (), *, as_of_ms: int | None = None
    ) -> Recommendation:
        """The top ``k`` titles for ``user_id``, never one of ``exclude`` (titles already watched):
        :meth:`prepare`, :meth:`rank` and :meth:`finish` in turn.

        ``as_of_ms`` is the request's time for the sources (recent popularity, release ages); by
        default the end of the version's training window, the clock of the data it knows. A
        feature store that fails degrades the request to the version's own features; a ranker
        backend that fails degrades it to the in-process ranker (``degraded`` says which).
        """
        prepared = self.prepare(user_id, k, exclude, as_of_ms=as_of_ms)
        self.rank(prepared)
        return self.finish(prepared)

    # -- the request's three steps (the KServe transformer's preprocess, predict, postprocess) -

    def prepare(self, user_id: str, k: int, exclude: Sequence[str] = (), *, as_of_ms: int | None = None) -> Prepared:
        """The request's features and candidates: the user's features (the online store's when it
        knows the user), the sources' merged candidates and the candidates' content features.
        Opens the request's ``recommend`` span (with a tracer), which :meth:`finish` ends."""
        tracing = is_tracing(self.tracer)
        root = (
            self.tracer.start_span("recommend", attributes={"model.version": self.version, "request.k": k})
            if tracing
            else trace.INVALID_SPAN
        )
        as_of = self.top_k.end_ms if as_of_ms is None else int(as_of_ms)
        timings: dict[str, float] = {}
        degraded: list[str] = []
        user: UserFeatures | None = None
        content = None
        with _current(root, tracing):
            with self._stage("features", timings, tracing):
                try:
                    user = self.features.user(user_id)
                except Exception:  # noqa: BLE001 - any store failure degrades, never fails the request
                    degraded.append("feature_store")
                query = self.query(user_id, user, as_of)
            with self._stage("retrieval", timings, tracing) as span:
                request = self.path.candidates(query, exclude)
                ids = self.top_k.content_ids[request.rows]
                span.set_attribute("retrieval.candidates", len(ids))
                span.set_attribute("retrieval.catalog", len(self.top_k.content_ids))
            with self._stage("features", timings, tracing, **{"features.part": "content"}):
                if "feature_store" not in degraded:
                    try:
                        content = self.features.content(list(ids))
                    except Exception:  # noqa: BLE001
                        degraded.append("feature_store")
        return Prepared(k, tuple(exclude), as_of, root, tracing, user, request, ids, content, timings, degraded)

    def rank(self, prepared: Prepared) -> None:
        """The candidates' scores (``prepared.scores``): the ranker's inputs, the ranker on its
        backend (the in-process ranker when the backend fails), the version's two-stage blend."""
        with (
            _current(prepared.root, prepared.tracing),
            self._stage(
                "ranking", prepared.stage_seconds, prepared.tracing, **{"ranking.backend": self.ranker.name}
            ) as span,
        ):
            request = prepared.request
            inputs = self.path.ranker_inputs(request, prepared.content)
            try:
                scores = self.ranker.score(*inputs)
            except Exception:  # noqa: BLE001 - an unreachable predictor degrades to in-process
                if self.ranker is self.in_process:
                    raise
                prepared.degraded.append(self.ranker.name)
                span.set_attribute("ranking.fallback", self.in_process.name)
                scores = self.in_process.score(*inputs)
            prepared.scores = self.path.two_stage(request, scores)

    def finish(self, prepared: Prepared) -> Recommendation:
        """The business rules over the ranked candidates, and the answer; ends the request's span."""
        if prepared.scores is None:
            raise ValueError("finish() before rank(): the candidates have no scores")
        scores, rows, ids = prepared.scores, prepared.request.rows, prepared.ids
        with _current(prepared.root, prepared.tracing, end=True):
            with self._stage("rules", prepared.stage_seconds, prepared.tracing):
                ages = release_age_days(self.top_k.release_ms[rows], prepared.as_of_ms)
                chosen = apply_rules(
                    list(ids),
                    scores.tolist(),
                    genres=list(self.primary_genre[rows]),
                    creators=list(self.creator[rows]),
                    new_release=list(np.nan_to_num(ages, nan=np.inf) <= self.rules.new_release_days),
                    watched=set(prepared.exclude),
                    limits=RuleLimits(prepared.k, self.rules.max_per_genre, self.rules.max_per_creator),
                )
            user = prepared.user
            prepared.root.set_attribute("user.known", bool(user is not None and user.known))
            if prepared.degraded:
                prepared.root.set_attribute("degraded", ",".join(prepared.degraded))
        return Recommendation(
            items=[str(ids[i]) for i in chosen],
            scores=[float(scores[i]) for i in chosen],
            features=user.as_log() if user is not None else {},
            candidates=len(rows),
            stage_seconds=prepared.stage_seconds,
            degraded=prepared.degraded,
        )


@contextmanager
def _current(root: trace.Span, tracing: bool, *, end: bool = False) -> Iterator[None]:
    """``root`` as the current span while a step runs (the steps may run on different threads);
    ended after the step when ``end``, or when the step fails. Nothing when not ``tracing``."""
    if not tracing:
        yield
        return
    with trace.use_span(root, end_on_exit=False, record_exception=True, set_status_on_exception=True):
        try:
            yield
        except BaseException:
            root.end()
            raise
    if end:
        root.end()
