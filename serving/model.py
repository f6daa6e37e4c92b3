"""The ``recommender`` KServe model: parse the request, let the router answer, build the response.

Open Inference Protocol v2 (``/v2/models/recommender/infer``, REST and gRPC) and KServe v1
(``/v1/models/recommender:predict`` with ``{"instances": [{"user_id": ..., "k": ..., "exclude": [...]}]}``).
All the logic is in :mod:`flywheel.serving`; a broken request is a 400 naming the problem.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import orjson
from kserve import InferOutput, InferRequest, InferResponse, Model
from kserve.errors import InvalidInput

from flywheel.serving.prediction_log import new_request_id
from flywheel.serving.protocol import RecommendRequest, RequestError, TensorIn, parse_request, parse_v1_instance
from flywheel.serving.router import Answer, Router
from serving.observer import PrometheusObserver


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
        threads: int = 2,
    ) -> None:
        super().__init__(name)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="recommend")
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

    async def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        """Answer on the request threads (torch and NumPy release the GIL: requests overlap on the cores)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.answer, payload)

    def answer(self, payload: Any) -> Any:
        """Answer the request(s); a broken request raises InvalidInput (400)."""
        try:
            requests = self._parse(payload)
        except RequestError as exc:
            self.observer.rejected("bad_request", 400)
            raise InvalidInput(str(exc)) from exc
        request_id = (getattr(payload, "id", None) or "") if isinstance(payload, InferRequest) else ""
        try:
            answers = [self.router.answer(r, request_id or new_request_id()) for r in requests]
        except Exception:
            self.observer.rejected("internal", 500)
            raise
        if isinstance(payload, InferRequest):
            return _v2_response(self.name, answers[0], payload)
        return {"predictions": [_v1_prediction(a) for a in answers]}


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
