"""`flywheel serve` answers tritonclient over HTTP and gRPC; health, metadata, metrics, prediction log."""

import json
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import tritonclient.http as httpclient

from flywheel.events.local_log import LocalEventLog
from flywheel.serving.client import recommend
from flywheel.serving.prediction_log import read_predictions
from tests.support.services import ModelServer

pytestmark = pytest.mark.integration


def _inputs(module, user: str, k: int):
    user_in = module.InferInput("user_id", [1], "BYTES")
    user_in.set_data_from_numpy(np.array([user.encode()], dtype=np.object_))
    k_in = module.InferInput("k", [1], "INT32")
    k_in.set_data_from_numpy(np.array([k], dtype=np.int32))
    return [user_in, k_in]


#: tritonclient's gRPC stubs and the kserve SDK (imported by the chart tests) register the same
#: protobuf symbols (``inference.ServerLiveRequest``) and cannot share a process: the gRPC client
#: runs in a process of its own, as any client of the server would.
_GRPC_CLIENT = """
import json, sys
import numpy as np
import tritonclient.grpc as grpcclient
user_in = grpcclient.InferInput("user_id", [1], "BYTES")
user_in.set_data_from_numpy(np.array([sys.argv[2].encode()], dtype=np.object_))
k_in = grpcclient.InferInput("k", [1], "INT32")
k_in.set_data_from_numpy(np.array([int(sys.argv[3])], dtype=np.int32))
answer = grpcclient.InferenceServerClient(sys.argv[1]).infer("recommender", [user_in, k_in])
print(json.dumps({
    "items": [i.decode() for i in answer.as_numpy("item_id")],
    "scores": answer.as_numpy("score").astype(float).tolist(),
    "variant": answer.get_response().parameters["variant"].string_param,
}))
"""


def test_tritonclient_http_and_grpc_get_the_same_recommendations(server: ModelServer) -> None:
    http = httpclient.InferenceServerClient(server.http_url)
    by_http = http.infer("recommender", _inputs(httpclient, "u0003", 6))
    grpc_run = subprocess.run(
        [sys.executable, "-c", _GRPC_CLIENT, server.grpc_url, "u0003", "6"], capture_output=True, text=True, timeout=60
    )
    assert grpc_run.returncode == 0, grpc_run.stderr
    by_grpc = json.loads(grpc_run.stdout)
    items = by_http.as_numpy("item_id")
    assert items.shape == (6,) and by_http.as_numpy("score").dtype == np.float32
    assert [i.decode() for i in items] == by_grpc["items"]
    np.testing.assert_allclose(by_http.as_numpy("score"), by_grpc["scores"], rtol=1e-6)
    params = by_http.get_response()["parameters"]
    assert params["model_version"] == "local" and params["variant"] == "champion" and params["request_id"]
    assert by_grpc["variant"] == "champion"


@pytest.mark.parametrize(
    "content_type",
    [
        {"Content-Type": "application/json"},
        {"Content-Type": "application/x-www-form-urlencoded"},  # what `curl -d` sends
        {"Content-Type": "text/plain; charset=utf-8"},
    ],
    ids=["json", "curl-form", "text"],
)
def test_the_json_protocol_and_the_client_agree(server: ModelServer, content_type: dict[str, str]) -> None:
    """A v2 body without the binary-data header is JSON, whatever content type the client sent."""
    body = json.dumps(
        {
            "inputs": [
                {"name": "user_id", "datatype": "BYTES", "shape": [1], "data": ["u0003"]},
                {"name": "k", "datatype": "INT32", "shape": [1], "data": [6]},
            ]
        }
    ).encode()
    request = urllib.request.Request(f"http://{server.http_url}/v2/models/recommender/infer", body, content_type)
    with urllib.request.urlopen(request) as response:
        answer = json.loads(response.read())
    items = next(o for o in answer["outputs"] if o["name"] == "item_id")["data"]
    assert items == recommend(server.http_url, "u0003", k=6).items


def test_health_readiness_metadata_and_v1(server: ModelServer) -> None:
    http = httpclient.InferenceServerClient(server.http_url)
    assert http.is_server_live() and http.is_model_ready("recommender")
    assert http.get_model_metadata("recommender")["name"] == "recommender"
    body = json.dumps({"instances": [{"user_id": "u0001", "k": 3}]}).encode()
    request = urllib.request.Request(
        f"http://{server.http_url}/v1/models/recommender:predict", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request) as response:
        (prediction,) = json.loads(response.read())["predictions"]
    assert len(prediction["item_id"]) == 3 and prediction["variant"] == "champion"


def test_metrics_count_requests_and_stages(server: ModelServer) -> None:
    recommend(server.http_url, "u0002", k=4)
    with urllib.request.urlopen(f"http://{server.http_url}/metrics") as response:
        text = response.read().decode()
    assert 'flywheel_serving_requests_total{code="200",variant="champion"}' in text
    for stage in ("features", "retrieval", "ranking", "rules"):
        assert f'flywheel_serving_stage_seconds_count{{stage="{stage}",variant="champion"}}' in text
    assert 'flywheel_serving_model_info{variant="champion",version="local"} 1.0' in text


def test_each_answer_is_in_the_prediction_log(server: ModelServer) -> None:
    answer = recommend(server.http_url, "u0042", k=5)
    log = LocalEventLog(server.home / "log", partitions=8)
    found = []
    deadline = time.monotonic() + 10
    while not found and time.monotonic() < deadline:  # the writer flushes within prediction_log_flush_ms
        found = [r for r in read_predictions(log) if r.request_id == answer.request_id]
    (record,) = found
    assert (record.user_id, record.variant, record.model_version, record.model_name) == (
        "u0042",
        "champion",
        "local",
        "recommender",
    )
    assert list(record.items) == answer.items
    np.testing.assert_allclose(record.scores, answer.scores, rtol=1e-6)


def test_requests_leave_no_log_lines_unless_the_access_log_is_asked_for(
    server: ModelServer, served_bundle, tmp_path
) -> None:
    from tests.support.services import model_server

    for _ in range(3):
        recommend(server.http_url, "u0003", k=3)
    quiet = server.log_path.read_text()
    assert "uvicorn.access" not in quiet and "kserve.trace" not in quiet
    config = tmp_path / "flywheel.yaml"
    config.write_text("serving:\n  access_log: true\n")  # one setting
    args = ("--config", str(config), "--bundle", str(served_bundle[0]), "--features", "none")
    with model_server(tmp_path / "home", *args) as logged:
        for _ in range(3):
            recommend(logged.http_url, "u0003", k=3)
        time.sleep(0.5)  # the log handler writes after the answer
        lines = logged.log_path.read_text()
    assert lines.count("POST /v2/models/recommender/infer") >= 3 and "kserve.trace" in lines
