"""The request contract: valid requests parse, every broken one names its problem."""

import pytest

from flywheel.serving.protocol import RecommendRequest, RequestError, TensorIn, parse_request, parse_v1_instance

LIMITS = {"default_k": 10, "max_k": 100, "max_exclude": 5}


def _user(value: object = "u1") -> TensorIn:
    return TensorIn("user_id", "BYTES", [1], [value])


def test_a_full_request_parses() -> None:
    request = parse_request(
        [_user(b"u1"), TensorIn("k", "INT32", [1], [5]), TensorIn("exclude", "BYTES", [2], [b"c1", "c2"])], **LIMITS
    )
    assert request == RecommendRequest("u1", 5, ("c1", "c2"))


def test_k_defaults() -> None:
    assert parse_request([_user()], **LIMITS).k == 10


@pytest.mark.parametrize(
    ("tensors", "message"),
    [
        ([], "missing input 'user_id'"),
        ([TensorIn("user_id", "INT32", [1], [3])], "'user_id': datatype must be BYTES"),
        ([TensorIn("user_id", "BYTES", [2], ["a", "b"])], "'user_id': expected shape \\[1\\]"),
        ([TensorIn("user_id", "BYTES", [1, 1], ["a"])], "'user_id': shape must be \\[n\\]"),
        ([_user(b"\xff\xfe")], "'user_id': not valid UTF-8"),
        ([_user("  ")], "empty user id"),
        ([_user(), TensorIn("k", "INT32", [1], [1_000_000])], "'k': must be between 1 and 100"),
        ([_user(), TensorIn("k", "INT32", [1], [0])], "'k': must be between 1 and 100"),
        ([_user(), TensorIn("k", "FP32", [1], [3.0])], "'k': datatype must be INT32 or INT64"),
        ([_user(), TensorIn("exclude", "BYTES", [3], ["a"])], "'exclude': shape \\[3\\] does not match"),
        ([_user(), TensorIn("exclude", "BYTES", [6], list("abcdef"))], "'exclude': at most 5"),
        ([_user(), TensorIn("colour", "BYTES", [1], ["red"])], "unknown input 'colour'"),
        ([_user(), _user()], "given twice"),
    ],
)
def test_broken_requests_name_the_problem(tensors: list[TensorIn], message: str) -> None:
    with pytest.raises(RequestError, match=message):
        parse_request(tensors, **LIMITS)


def test_v1_instances() -> None:
    assert parse_v1_instance({"user_id": "u1", "k": 3, "exclude": ["c"]}, **LIMITS) == RecommendRequest("u1", 3, ("c",))
    with pytest.raises(RequestError, match="unknown field"):
        parse_v1_instance({"user_id": "u1", "kk": 3}, **LIMITS)
    with pytest.raises(RequestError, match="'k': expected an integer"):
        parse_v1_instance({"user_id": "u1", "k": "ten"}, **LIMITS)
    with pytest.raises(RequestError, match="must be an object"):
        parse_v1_instance(["u1"], **LIMITS)
