"""The ``recommender`` KServe model, in the KServe transformer's three steps.

* ``preprocess``: check the request (a 400 naming the problem), read the user's features and
  retrieve the candidates with their features;
* ``predict``: rank them, in-process or on the Triton predictor;
* ``postprocess``: the business rules, the prediction log, the shadow's copy, the response.

The first two run on the event loop, or on request threads where
:meth:`ServingConfig.steps_on_threads <flywheel.config.serving.ServingConfig.steps_on_threads>`
says so (a Triton call; ``serving.request_threads``); the last always on the event loop.

Open Inference Protocol v2 (``/v2/models/recommender/infer``, REST and gRPC) and KServe v1
(``/v1/models/recommender:predict`` with ``{"instances": [{"user_id": ..., "k": ..., "exclude": [...]}]}``).
All the logic is in :mod:`flywheel.serving`; a broken request is a 400 naming the problem.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import numpy as np
import orjson
from kserve import InferOutput, InferRequest, InferResponse, Model
from kserve.errors import InvalidInput

from flywheel.serving.prediction_log import new_request_id
from flywheel.serving.protocol import RecommendRequest, RequestError, TensorIn, parse_request, parse_v1_instance
from flywheel.serving.router import Answer, Routed, Router
from serving.observer import PrometheusObserver

T = TypeVar("T")


class RecommenderModel(Model):
    """Thin KServe model over a :class:`~flywheel.serving.router.Router`."""

    def __init__(
        self,
        name: str,
        router: Router,
        *,
        default_k: int,
        max_k: int,
        max_exclude: int,
        observer: PrometheusObserver,
        threads: int = 0,
        prepare_on_threads: bool = True,
    ) -> None:
        super().__init__(name)
        pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="recommend") if threads else None
        self._rank_pool = pool
        self._prepare_pool = pool if prepare_on_threads else None
        self.router = router
        self.limits = {"default_k": default_k, "max_k": max_k, "max_exclude": max_exclude}
        self.observer = observer
        self.ready = True

    def _tensors(self, payload: InferRequest) -> list[TensorIn]:
        tensors = []
        for tensor in payload.inputs:
            try:
                values = np.asarray(tensor.as_numpy()).reshape(-1).tolist()
            except Exception as exc:  # noqa: BLE001 - any decoding failure is the client's
                raise RequestError(
                    f"input '{tensor.name}': cannot read its data as {tensor.datatype}{tensor.shape}: {exc}"
                ) from exc
            tensors.append(TensorIn(tensor.name, tensor.datatype, list(tensor.shape), values))
        return tensors

    def _parse(self, payload: Any) -> list[RecommendRequest]:
        if isinstance(payload, InferRequest):
            return [parse_request(self._tensors(payload), **self.limits)]
        if isinstance(payload, bytes | bytearray):  # a v1 body sent without a JSON content type
            try:
                payload = orjson.loads(payload)
            except orjson.JSONDecodeError as exc:
                raise RequestError(f"the body is not JSON: {exc}") from exc
        if isinstance(payload, dict) and isinstance(payload.get("instances"), list) and payload["instances"]:
            return [parse_v1_instance(i, **self.limits) for i in payload["instances"]]
        raise RequestError("expected an inference request (v2 inputs, or v1 {'instances': [...]})")

    # -- the transformer's three steps -----------------------------------------------------------

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        """Check the request (a 400 naming the problem) and prepare it: the user's features, the
        candidates from the two-tower index and the other sources, their features
        (:meth:`Router.start <flywheel.serving.router.Router.start>`)."""
        try:
            requests = self._parse(payload)
        except RequestError as exc:
            self.observer.rejected("bad_request", 400)
            raise InvalidInput(str(exc)) from exc
        request_id = (getattr(payload, "id", None) or "") if isinstance(payload, InferRequest) else ""
        routed = await self._run(
            self._prepare_pool, lambda: [self.router.start(r, request_id or new_request_id()) for r in requests]
        )
        return _InFlight(payload, routed)

    async def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        """Rank the candidates: the version's ranker in-process, or its Triton
        predictor over the Open Inference Protocol (``serving.triton.url``, KServe's ``predictor_host``)."""
        flight = cast(_InFlight, payload)

        def rank_all() -> None:
            for routed in flight.routed:
                self.router.rank(routed)

        await self._run(self._rank_pool, rank_all)
        return flight

    def postprocess(
        self, result: Any, headers: dict[str, str] | None = None, response_headers: dict[str, str] | None = None
    ) -> Any:
        """Apply the business rules, log the answer, mirror the request to the shadow, and answer
        (on the event loop: a few hundred microseconds of Python, one hand-off fewer)."""
        flight = cast(_InFlight, result)
        try:
            answers = [self.router.finish(r) for r in flight.routed]
        except Exception:
            self.observer.rejected("internal", 500)
            raise
        if isinstance(flight.payload, InferRequest):
            return _v2_response(self.name, answers[0], flight.payload)
        return {"predictions": [_v1_prediction(a) for a in answers]}

    async def _run(self, pool: ThreadPoolExecutor | None, work: Callable[[], T]) -> T:
        """``work()`` on one of the ``pool``'s request threads, or here on the event loop without one;
        a failure counts as an internal error (500)."""
        try:
            if pool is None:
                return work()
            return await asyncio.get_running_loop().run_in_executor(pool, work)
        except Exception:
            self.observer.rejected("internal", 500)
            raise


@dataclass(frozen=True)
class _InFlight:
    """A request between the transformer's steps: what arrived and where the router sent it."""

    payload: Any
    routed: list[Routed]


def _v2_response(name: str, answer: Answer, request: InferRequest) -> InferResponse:
    rec = answer.recommendation
    outputs = [
        InferOutput("item_id", [len(rec.items)], "BYTES", data=list(rec.items)),
        InferOutput("score", [len(rec.scores)], "FP32", data=[float(s) for s in rec.scores]),
    ]
    if request.use_binary_outputs or request.from_grpc:
        outputs = [
            _numpy_output("item_id", np.array(list(rec.items), dtype=np.object_), "BYTES"),
            _numpy_output("score", np.asarray(rec.scores, dtype=np.float32), "FP32"),
        ]
    return InferResponse(
        response_id=answer.request_id,
        model_name=name,
        model_version=answer.model_version,
        infer_outputs=outputs,
        from_grpc=request.from_grpc,
        parameters={"model_version": answer.model_version, "variant": answer.variant, "request_id": answer.request_id},
        use_binary_outputs=request.use_binary_outputs,
        requested_outputs=request.request_outputs,
    )


def _numpy_output(name: str, array: np.ndarray, datatype: str) -> InferOutput:
    output = InferOutput(name, list(array.shape), datatype)
    output.set_data_from_numpy(array, binary_data=True)
    return output


def _v1_prediction(answer: Answer) -> dict[str, Any]:
    rec = answer.recommendation
    return {
        "item_id": list(rec.items),
        "score": [float(s) for s in rec.scores],
        "model_version": answer.model_version,
        "variant": answer.variant,
        "request_id": answer.request_id,
    }
