"""Bad requests under load: every one a 4xx naming its problem, no 5xx, the good answers unchanged."""

import json
import threading
import urllib.error
import urllib.request

import pytest

from flywheel.serving.client import recommend
from tests.support.services import ModelServer

pytestmark = pytest.mark.integration


def _v2(user: object = "u0001", k: object = 5, *, datatype: str = "BYTES", shape: object = (1,)) -> bytes:
    inputs = [{"name": "user_id", "datatype": datatype, "shape": list(shape), "data": [user]}]  # type: ignore[arg-type]
    if k is not None:
        inputs.append({"name": "k", "datatype": "INT32", "shape": [1], "data": [k]})
    return json.dumps({"inputs": inputs}).encode()


BAD: list[tuple[str, str, bytes, str]] = [
    ("wrong type", "recommender", _v2(user=123), "expected a string"),
    ("wrong datatype", "recommender", _v2(datatype="INT32", user=1), "datatype must be BYTES"),
    ("wrong shape", "recommender", _v2(shape=(3,)), "cannot read its data"),
    (
        "missing user",
        "recommender",
        json.dumps({"inputs": [{"name": "k", "datatype": "INT32", "shape": [1], "data": [3]}]}).encode(),
        "missing input 'user_id'",
    ),
    ("k of a million", "recommender", _v2(k=1_000_000), "'k': must be between 1 and 100"),
    ("unknown model", "nosuchmodel", _v2(), "nosuchmodel"),
    ("non-UTF-8 body", "recommender", b'{"inputs": [{"name": "user_id", "data": ["\xff\xfe"]}]}', "not valid UTF-8"),
    ("not JSON", "recommender", b"{{{{", "JSON decode error"),
    (
        "unknown input",
        "recommender",
        json.dumps({"inputs": [{"name": "colour", "datatype": "BYTES", "shape": [1], "data": ["red"]}]}).encode(),
        "unknown input 'colour'",
    ),
]


def _post(server: ModelServer, model: str, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(
        f"http://{server.http_url}/v2/models/{model}/infer", body, {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def test_each_bad_request_is_a_4xx_naming_the_problem(server: ModelServer) -> None:
    for name, model, body, message in BAD:
        code, text = _post(server, model, body)
        assert 400 <= code < 500, (name, code, text)
        assert message in text, (name, text)


def test_a_mix_of_bad_requests_under_load_no_5xx_and_good_answers_unchanged(server: ModelServer) -> None:
    users = [f"u{i:04d}" for i in range(8)]
    expected = {u: recommend(server.http_url, u, k=5) for u in users}
    codes: list[int] = []
    wrong: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        for round_ in range(6):
            for _name, model, body, _ in BAD:
                code, _text = _post(server, model, body)
                with lock:
                    codes.append(code)
            user = users[(n + round_) % len(users)]
            got = recommend(server.http_url, user, k=5)
            with lock:
                codes.append(200)
                if got.items != expected[user].items or got.scores != pytest.approx(expected[user].scores, rel=1e-6):
                    wrong.append(user)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(codes) == 4 * 6 * (len(BAD) + 1)
    assert not [c for c in codes if c >= 500]
    assert wrong == []
    assert server.process.poll() is None
    http_ready = urllib.request.urlopen(f"http://{server.http_url}/v2/models/recommender/ready", timeout=5)
    assert http_ready.status == 200
