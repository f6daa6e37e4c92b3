"""A client of the recommender over the Open Inference Protocol v2 (tritonclient, HTTP or gRPC)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


class RecommendClientError(RuntimeError):
    """The server could not be reached or refused the request; the message says which."""


@dataclass(frozen=True)
class RecommendResult:
    """The recommender's answer."""

    items: list[str]
    scores: list[float]
    model_version: str
    variant: str
    request_id: str


def _parameter(params: Any, name: str) -> str:
    if isinstance(params, dict):
        value = params.get(name, "")
        return str(value.get("string_param", value) if isinstance(value, dict) else value)
    if name in params:  # a protobuf map of InferParameter
        param = params[name]
        return str(getattr(param, param.WhichOneof("parameter_choice")))
    return ""


def recommend(
    url: str,
    user_id: str,
    *,
    k: int = 10,
    exclude: Sequence[str] = (),
    grpc: bool = False,
    model: str = "recommender",
    timeout_s: float = 10.0,
) -> RecommendResult:
    """Call the recommender at ``url`` (host:port) for ``user_id``.

    Raises:
        RecommendClientError: Unreachable server or a refused request (the server's message).
    """
    from tritonclient.utils import InferenceServerException

    if grpc:
        import tritonclient.grpc as client_module
    else:
        import tritonclient.http as client_module
    inputs = []
    for name, array, dtype in (
        ("user_id", np.array([user_id.encode()], dtype=np.object_), "BYTES"),
        ("k", np.array([k], dtype=np.int32), "INT32"),
        *((("exclude", np.array([e.encode() for e in exclude], dtype=np.object_), "BYTES"),) if exclude else ()),
    ):
        tensor: Any = client_module.InferInput(name, list(array.shape), dtype)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    try:
        if grpc:
            client: Any = client_module.InferenceServerClient(url)
            result = client.infer(model, inputs, client_timeout=timeout_s)
            params = result.get_response().parameters
        else:
            client = client_module.InferenceServerClient(url, connection_timeout=timeout_s, network_timeout=timeout_s)
            result = client.infer(model, inputs)
            params = result.get_response().get("parameters", {})
    except InferenceServerException as exc:
        raise RecommendClientError(f"{url}: {exc.message()}") from exc
    except (OSError, ConnectionError) as exc:
        raise RecommendClientError(f"{url}: cannot reach the model server ({exc})") from exc
    items = [v.decode() if isinstance(v, bytes) else str(v) for v in result.as_numpy("item_id").reshape(-1)]
    scores = [float(s) for s in result.as_numpy("score").reshape(-1)]
    client.close()
    return RecommendResult(
        items,
        scores,
        _parameter(params, "model_version"),
        _parameter(params, "variant"),
        _parameter(params, "request_id"),
    )
