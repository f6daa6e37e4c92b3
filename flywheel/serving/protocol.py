"""The recommender's request contract (Open Inference Protocol v2), checked by pure functions.

Inputs: ``user_id`` (BYTES, shape [1]), optional ``k`` (INT32 or INT64, shape [1]), optional
``exclude`` (BYTES, shape [n]). Outputs: ``item_id`` (BYTES [k]) and ``score`` (FP32 [k]), and the
parameters ``model_version``, ``variant`` and ``request_id``. Every violation raises
:class:`RequestError` with a message naming the input and the problem (the server answers 400).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

INPUTS = ("user_id", "k", "exclude")
INT_TYPES = ("INT32", "INT64")


class RequestError(ValueError):
    """A request that breaks the contract; the message names the input and the problem."""


@dataclass(frozen=True, slots=True)
class TensorIn:
    """One input tensor as it arrived."""

    name: str
    datatype: str
    shape: Sequence[int]
    values: Sequence[Any]


@dataclass(frozen=True, slots=True)
class RecommendRequest:
    """A valid request."""

    user_id: str
    k: int
    exclude: tuple[str, ...] = ()


def _text(value: Any, name: str) -> str:
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RequestError(f"input '{name}': not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    if isinstance(value, str):
        return value
    raise RequestError(f"input '{name}': expected a string, got {type(value).__name__}")


def _count(shape: Sequence[int], name: str) -> int:
    try:
        dims = [int(d) for d in shape]
    except (TypeError, ValueError) as exc:
        raise RequestError(f"input '{name}': shape {list(shape)!r} is not a list of integers") from exc
    if len(dims) != 1 or dims[0] < 0:
        raise RequestError(f"input '{name}': shape must be [n], got {dims}")
    return dims[0]


def parse_request(tensors: Iterable[TensorIn], *, default_k: int, max_k: int, max_exclude: int) -> RecommendRequest:
    """Check the input tensors of one request and return it.

    Raises:
        RequestError: An input is missing, unknown, repeated, of the wrong type or shape, or out of range.
    """
    by_name: dict[str, TensorIn] = {}
    for tensor in tensors:
        if tensor.name not in INPUTS:
            raise RequestError(f"unknown input '{tensor.name}' (the inputs are {', '.join(INPUTS)})")
        if tensor.name in by_name:
            raise RequestError(f"input '{tensor.name}' is given twice")
        by_name[tensor.name] = tensor
    user = by_name.get("user_id")
    if user is None:
        raise RequestError("missing input 'user_id' (BYTES, shape [1])")
    if user.datatype != "BYTES":
        raise RequestError(f"input 'user_id': datatype must be BYTES, got {user.datatype}")
    if _count(user.shape, "user_id") != 1 or len(user.values) != 1:
        raise RequestError(f"input 'user_id': expected shape [1] with one value, got {len(user.values)} value(s)")
    user_id = _text(user.values[0], "user_id").strip()
    if not user_id:
        raise RequestError("input 'user_id': empty user id")
    k = default_k
    if "k" in by_name:
        tensor = by_name["k"]
        if tensor.datatype not in INT_TYPES:
            raise RequestError(f"input 'k': datatype must be INT32 or INT64, got {tensor.datatype}")
        if _count(tensor.shape, "k") != 1 or len(tensor.values) != 1:
            raise RequestError("input 'k': expected shape [1] with one value")
        raw = tensor.values[0]
        if isinstance(raw, bool) or not isinstance(raw, int | float) or int(raw) != raw:
            raise RequestError(f"input 'k': expected an integer, got {raw!r}")
        k = int(raw)
        if not 1 <= k <= max_k:
            raise RequestError(f"input 'k': must be between 1 and {max_k}, got {k}")
    exclude: tuple[str, ...] = ()
    if "exclude" in by_name:
        tensor = by_name["exclude"]
        if tensor.datatype != "BYTES":
            raise RequestError(f"input 'exclude': datatype must be BYTES, got {tensor.datatype}")
        n = _count(tensor.shape, "exclude")
        if n != len(tensor.values):
            raise RequestError(f"input 'exclude': shape [{n}] does not match {len(tensor.values)} value(s)")
        if n > max_exclude:
            raise RequestError(f"input 'exclude': at most {max_exclude} titles, got {n}")
        exclude = tuple(_text(v, "exclude") for v in tensor.values)
    return RecommendRequest(user_id, k, exclude)


def parse_v1_instance(instance: Any, *, default_k: int, max_k: int, max_exclude: int) -> RecommendRequest:
    """A KServe v1 instance ``{"user_id": ..., "k": ..., "exclude": [...]}`` checked like a v2 request.

    Raises:
        RequestError: The instance is not an object or breaks the contract.
    """
    if not isinstance(instance, dict):
        raise RequestError(f"a v1 instance must be an object with user_id, got {type(instance).__name__}")
    tensors = [TensorIn("user_id", "BYTES", [1], [instance.get("user_id")])] if "user_id" in instance else []
    if "k" in instance:
        tensors.append(TensorIn("k", "INT64", [1], [instance["k"]]))
    if "exclude" in instance:
        values = instance["exclude"]
        if not isinstance(values, list):
            raise RequestError("field 'exclude': expected a list of content ids")
        tensors.append(TensorIn("exclude", "BYTES", [len(values)], values))
    unknown = set(instance) - set(INPUTS)
    if unknown:
        raise RequestError(f"unknown field(s) {sorted(unknown)} (the fields are {', '.join(INPUTS)})")
    return parse_request(tensors, default_k=default_k, max_k=max_k, max_exclude=max_exclude)
