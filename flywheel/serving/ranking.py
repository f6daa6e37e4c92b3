"""Ranker backends: the ranking model in-process or on a Triton predictor (Open Inference Protocol v2).

Both take the ranker's encoded inputs (sparse ids [n, 4], dense features [n, D], history [n, L]) and
return the ranker score [n]: the configured weighted sum of the heads' probabilities
(:func:`flywheel.models.ranker.combined_score`). The Triton model is the exported
:class:`flywheel.export.torchscript.ScoringRanker`, which computes the same sum.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

import numpy as np

from flywheel.models.request_path import RequestPath

#: Input and output names of the exported ranker (the libtorch backend's ``name__index`` convention).
TRITON_INPUTS = ("sparse_ids__0", "dense_features__1", "history_ids__2")
TRITON_SCORE = "score__1"


class RankerBackend(Protocol):
    """Scores encoded (user, candidate) rows."""

    name: str

    def score(self, sparse: np.ndarray, dense: np.ndarray, history: np.ndarray) -> np.ndarray:
        """The ranker score of each row, [n]."""


class InProcessRanker:
    """The version's ranker in this process: the request path's own scoring
    (:meth:`~flywheel.models.request_path.RequestPath.ranker_scores`, one TorchScript call that
    releases the GIL: request threads, where the server has them, rank in parallel)."""

    name = "in_process"

    def __init__(self, path: RequestPath) -> None:
        self.path = path

    def score(self, sparse: np.ndarray, dense: np.ndarray, history: np.ndarray) -> np.ndarray:
        """Head probabilities through the version's ranker, combined by its head weights."""
        return np.asarray(self.path.ranker_scores(sparse, dense, history), dtype=np.float64)


class TritonRanker:
    """The exported ranker on a Triton server, called over HTTP with tritonclient (binary tensors).

    tritonclient's HTTP client runs on gevent and belongs to the thread that first uses it (from
    another thread it raises ``greenlet.error: Cannot switch to a different thread``), so each
    request thread gets its own client. Until 2026-12-03 one client was shared: under concurrent
    requests about 40 % of the rankings failed over to the in-process ranker.
    """

    name = "triton"

    def __init__(
        self, url: str, *, model_name: str = "ranker", model_version: str = "", timeout_s: float = 1.0
    ) -> None:
        import tritonclient.http as httpclient

        self.url = url
        self.model_name = model_name
        self.model_version = model_version
        self.timeout_s = timeout_s
        self._http = httpclient
        self._local = threading.local()
        self._clients: list[Any] = []
        self._lock = threading.Lock()

    @property
    def _client(self) -> Any:
        """This thread's client (made on its first call)."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._http.InferenceServerClient(
                self.url, connection_timeout=self.timeout_s, network_timeout=self.timeout_s
            )
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def ready(self) -> bool:
        """Whether Triton reports the ranker ready (False when unreachable)."""
        try:
            return bool(self._client.is_model_ready(self.model_name, self.model_version))
        except Exception:  # noqa: BLE001 - unreachable server: not ready
            return False

    def score(self, sparse: np.ndarray, dense: np.ndarray, history: np.ndarray) -> np.ndarray:
        """One inference call; raises when Triton fails or is unreachable."""
        inputs = []
        for name, array, dtype in zip(TRITON_INPUTS, (sparse, dense, history), ("INT64", "FP32", "INT64"), strict=True):
            tensor: Any = self._http.InferInput(name, list(array.shape), dtype)
            tensor.set_data_from_numpy(np.ascontiguousarray(array), binary_data=True)
            inputs.append(tensor)
        output = self._http.InferRequestedOutput(TRITON_SCORE, binary_data=True)
        result = self._client.infer(self.model_name, inputs, model_version=self.model_version, outputs=[output])
        return np.asarray(result.as_numpy(TRITON_SCORE), dtype=np.float64).reshape(-1)

    def close(self) -> None:
        """Close every thread's client."""
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()
