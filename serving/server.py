"""Build the recommender's model server from the configuration and run it (KServe ModelServer).

Local mode and cluster mode differ only by configuration: the bind address, the registry URI, the
feature store and, for ranking on Triton, the predictor's address (``serving.triton.url``, KServe's
``predictor_host``) or a local tritonserver started here (``flywheel serve --triton``).

KServe's ModelServer binds 0.0.0.0 and [::] with no option, so :func:`run_model_server` builds its
REST and gRPC servers itself on ``serving.host``. Import this module only after clearing
``sys.argv``: KServe parses the command line when it is imported.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import signal
import sys
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from grpc import aio
from kserve import ModelServer
from kserve.model_server import args as kserve_args
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor, LoggingInterceptor
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.rest.server import RESTServer
from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from threadpoolctl import threadpool_limits
from timing_asgi import TimingMiddleware

from flywheel.config.models import FlywheelConfig
from flywheel.serving.deployment import RegistryWatcher, bundle_loader
from flywheel.serving.features import FeatureSource, StaticFeatures
from flywheel.serving.prediction_log import PredictionWriter
from flywheel.serving.ranking import RankerBackend, TritonRanker
from flywheel.serving.recommender import Recommender
from flywheel.serving.router import Deployment, Router
from monitoring import metrics
from serving.model import RecommenderModel
from serving.observer import PrometheusObserver
from serving.triton import TritonServer, add_ranker_version, free_port, start_triton, triton_version

LOG = logging.getLogger(__name__)


class UnavailableFeatures:
    """The feature store could not be opened: every read fails, so every request degrades to defaults."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def user(self, user_id: str) -> Any:
        """Always fails."""
        raise ConnectionError(self.reason)

    def content(self, content_ids: Any) -> Any:
        """Always fails."""
        raise ConnectionError(self.reason)


def open_features(config: FlywheelConfig, content_ids: list[str], vector_dim: int) -> FeatureSource:
    """The configured feature source; an online store that cannot be opened degrades (logged)."""
    if config.serving.feature_source == "none":
        return StaticFeatures(vector_dim=vector_dim)
    try:
        from flywheel.features import formulas as f
        from flywheel.features.online import OnlineFeatureReader
        from flywheel.features.store import open_store
        from flywheel.serving.features import OnlineFeatures

        store = open_store(config.features)
        reader = OnlineFeatureReader(store, vocab=f.GenreVocabulary(tuple(config.features.genres)))
        reader.refresh(content_ids)
        return OnlineFeatures(reader, vector_dim=vector_dim)
    except Exception as exc:  # noqa: BLE001 - serve degraded rather than not at all
        LOG.warning("feature store unavailable, serving default features (degraded): %s", exc)
        return UnavailableFeatures(f"feature store unavailable: {exc}")


@dataclass
class ServerParts:
    """What `flywheel serve` runs, and how to stop it."""

    model: RecommenderModel
    router: Router
    watcher: RegistryWatcher | None = None
    writer: PredictionWriter | None = None
    triton: TritonServer | None = None
    notes: list[str] = field(default_factory=list)

    def close(self) -> None:
        """Stop polling, drain the shadow and the prediction log, stop Triton."""
        if self.watcher is not None:
            self.watcher.stop()
        self.router.close()
        if self.writer is not None:
            self.writer.close()
        if self.triton is not None:
            self.triton.stop()


def build_server(config: FlywheelConfig, *, triton: bool = False) -> ServerParts:
    """Load what serves (a bundle folder, else the registry's aliases), the ranker backend and the log.

    With ``triton`` a local tritonserver is started on the first version loaded, and each version's
    ranker is added to its repository (``ranker/<version>/``) as it is loaded.

    Raises:
        LookupError: The registry has no champion.
        FileNotFoundError: The bundle folder or the tritonserver binary is missing.
    """
    serving = config.serving
    # one request per core beats intra-op threads on batches of a few hundred rows; OpenBLAS's
    # spinning threads cost 10x throughput under concurrent requests on two cores
    torch.set_num_threads(1)
    threadpool_limits(1)
    cache = Path(serving.model_cache_dir)
    parts_triton: list[TritonServer] = []
    triton_versions: set[int] = set()
    repository = cache / "triton" / "repository"
    sources: dict[tuple[str, ...], FeatureSource] = {}
    ranker_name = serving.triton.model_name

    def ranker_for(bundle: Any, version: str, variant: str) -> RankerBackend | None:
        tv = triton_version(version)
        url = serving.triton.url_for(variant)
        if triton:
            if tv not in triton_versions:
                add_ranker_version(repository, bundle, tv, model_name=ranker_name)
                if parts_triton:
                    parts_triton[0].reload(ranker_name)
                else:
                    server = start_triton(
                        repository,
                        cache / "triton",
                        http_port=serving.triton.http_port or free_port(),
                        grpc_port=serving.triton.grpc_port or free_port(),
                        model_name=ranker_name,
                    )
                    parts_triton.append(server)
                    server.wait_ready(ranker_name, serving.triton.startup_timeout_s)
                triton_versions.add(tv)
            url = parts_triton[0].http_url
        if not url:
            return None
        # the local repository holds one ranker version per model version; an external predictor
        # (a Triton ServingRuntime on a cluster) serves its own repository: ask for its default version
        version_asked = str(tv) if triton else ""
        return TritonRanker(
            url, model_name=ranker_name, model_version=version_asked, timeout_s=serving.triton.timeout_s
        )

    def build(folder: Path, version: str, variant: str = "champion") -> Recommender:
        import pandas as pd

        from flywheel.models.bundle import ModelBundle

        bundle = ModelBundle.load(folder)
        catalog = pd.read_parquet(folder / "catalog.parquet")
        ids = tuple(catalog["content_id"].astype(str))
        if ids not in sources:
            sources[ids] = open_features(config, list(ids), bundle.spec.user_vector_dim)
        return Recommender(
            bundle,
            catalog,
            features=sources[ids],
            version=version,
            ranker=ranker_for(bundle, version, variant),
            rules=serving.rules,
        )

    observer = PrometheusObserver()
    writer = None
    if serving.prediction_log_sample_rate > 0:
        from flywheel.events.log import open_event_log

        log = open_event_log(config.event_log)
        log.create_topic(config.event_log.topics.predictions)
        writer = PredictionWriter(
            log.producer(config.event_log.topics.predictions),
            sample_rate=serving.prediction_log_sample_rate,
            flush_ms=serving.prediction_log_flush_ms,
        )
    watcher = None
    try:
        if serving.bundle_dir is not None:
            deployment = Deployment(serving.model_name, champion=build(Path(serving.bundle_dir), "local"))
        else:
            from flywheel.registry.mlflow_registry import connect

            connect(config.training.tracking_uri, config.training.experiment, str(config.training.artifact_root))
            watcher = RegistryWatcher(config.training.model_name, serving.model_name, bundle_loader(cache, build))
            watcher.poll()
            assert watcher.deployment is not None
            deployment = watcher.deployment
    except BaseException:
        for server in parts_triton:
            server.stop()
        if writer is not None:
            writer.close()
        raise
    router = Router(
        deployment,
        writer=writer,
        observer=observer,
        shadow_workers=serving.shadow_workers,
        shadow_queue=serving.shadow_queue,
    )
    observer.deployed(deployment)
    freeze_heap()
    if watcher is not None:

        def swap(new: Deployment) -> None:
            router.swap(new)
            observer.deployed(new)
            freeze_heap()

        watcher.on_change = swap
        watcher.start(serving.poll_interval_s)
    threads, prepare_on_threads = serving.steps_on_threads(local_triton=triton)
    model = RecommenderModel(
        serving.model_name,
        router,
        default_k=serving.default_k,
        max_k=serving.max_k,
        max_exclude=serving.max_exclude,
        observer=observer,
        threads=threads,
        prepare_on_threads=prepare_on_threads,
    )
    return ServerParts(model, router, watcher, writer, parts_triton[0] if parts_triton else None)


class _BoundGRPCServer(GRPCServer):
    """KServe's gRPC server on a chosen address (upstream hard-codes [::])."""

    def __init__(self, host: str, port: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(port, *args, **kwargs)
        self._host = host

    async def start(self, max_workers: int) -> None:
        """Serve until stopped."""
        servicer = InferenceServicer(self._data_plane, self._model_repository_extension)
        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            interceptors=(LoggingInterceptor(), ExceptionToStatusInterceptor()),
            options=[
                ("grpc.max_send_message_length", self._kwargs.get("grpc_max_send_message_length")),
                ("grpc.max_receive_message_length", self._kwargs.get("grpc_max_receive_message_length")),
            ],
        )
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
        self._server.add_insecure_port(f"{self._host}:{self._port}")
        await self._server.start()
        await self._server.wait_for_termination()


_JSON_TYPES = frozenset({b"application/json", b"application/cloudevents+json"})
"""The content types KServe reads as JSON (:class:`JsonBody` labels any other body ``application/json``)."""


class JsonBody:
    """ASGI middleware: a request body that is not of the binary-data extension is read as JSON.

    * A body that is not UTF-8 gets a 400 that says so and where (FastAPI answers "There was an
      error parsing the body", which does not name the problem).
    * A body sent without a JSON content type is JSON all the same, as the Open Inference Protocol
      says of a body without ``Inference-Header-Content-Length``: ``curl -d`` sends
      ``application/x-www-form-urlencoded``, which KServe took for binary tensors and answered
      "the 'inference-header-content-length' header is missing".

    Bodies of the binary-data extension (``Inference-Header-Content-Length``) pass through.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or ()) if scope["type"] == "http" else {}
        if scope["type"] != "http" or scope["method"] != "POST" or b"inference-header-content-length" in headers:
            await self.app(scope, receive, send)
            return
        chunks, message = [], {"more_body": True}
        while message.get("more_body", False):
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it
                break
            chunks.append(message.get("body", b""))
        body = b"".join(chunks)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            error = f"the request body is not valid UTF-8: byte 0x{body[exc.start]:02x} at position {exc.start}"
            payload = json.dumps({"error": error}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 400,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))],
                }
            )
            await send({"type": "http.response.body", "body": payload})
            return
        if headers.get(b"content-type", b"").split(b";")[0].strip().lower() not in _JSON_TYPES:
            kept = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            scope = {**scope, "headers": [*kept, (b"content-type", b"application/json")]}
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if replayed or message.get("type") != "http.request":
                return await receive() if replayed else message
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def freeze_heap() -> None:
    """Collect, then move every object alive now (the loaded versions: catalogs, histories, models)
    out of the garbage collector's generations (``gc.freeze``), so that a full collection during a
    request walks only what requests allocate. Unfrozen first: a version swapped out is collected."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _with_json_body() -> None:
    """Add :class:`JsonBody` to KServe's REST app (once per process, before it starts)."""
    from kserve.model_server import app

    if not any(m.cls is JsonBody for m in app.user_middleware):
        app.add_middleware(JsonBody)


class _RestServer(RESTServer):
    """KServe's REST server; without the access log, also without KServe's timing middleware.

    The middleware only feeds the per-request latency lines that ``access_log: false`` turns off,
    and it reads the process's CPU time (psutil) twice a request; the request latencies stay in the
    metrics (``flywheel_serving_request_seconds``). KServe adds it when the server starts
    (:meth:`create_application`), so it is taken off there: until 2026-12-03 it was taken off before
    the start, when it was not yet on the app, and it stayed.
    """

    def __init__(self, *args: Any, timing: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timing = timing

    def _add_middlewares(self, app: Any) -> None:
        super()._add_middlewares(app)
        if not self.timing:
            app.user_middleware[:] = [m for m in app.user_middleware if m.cls is not TimingMiddleware]


def run_model_server(
    model: RecommenderModel,
    *,
    host: str,
    http_port: int,
    grpc_port: int,
    access_log: bool = False,
    gil_switch_interval_ms: float = 1.0,
) -> None:
    """Serve ``model`` over REST (and gRPC unless ``grpc_port`` is 0) on ``host`` until SIGTERM/SIGINT.

    ``access_log`` keeps uvicorn's access line and KServe's latency lines for every request.
    ``gil_switch_interval_ms`` is this process's GIL switch interval: its threads (the event loop,
    request threads where there are any, the shadow's, the prediction log's) hand the GIL back and
    forth around every NumPy and torch call, and a thread waiting for it waits up to the interval
    (Python's 5 ms is as long as a whole request).
    """
    sys.setswitchinterval(gil_switch_interval_ms / 1000)
    try:
        DEFAULT_REGISTRY.register(metrics.REGISTRY)  # Flywheel's metrics on KServe's /metrics
    except ValueError:
        pass  # already registered in this process
    server = ModelServer(
        http_port=http_port,
        grpc_port=grpc_port or 8081,
        enable_grpc=grpc_port > 0,
        workers=1,
        enable_latency_logging=access_log,
    )
    if not access_log:  # KServe configured logging above; uvicorn logs access only to a logger with handlers
        access = logging.getLogger("uvicorn.access")
        access.handlers.clear()
        access.propagate = False
        logging.getLogger("kserve.trace").disabled = True  # its timing middleware's two lines per request
    server.register_model(model)
    rest = _RestServer(
        "kserve.model_server:app",
        server.dataplane,
        server.model_repository_extension,
        http_port,
        grace_period=2,
        timing=access_log,
    )
    rest.config.host = host
    _with_json_body()
    grpc_server = None
    if grpc_port:
        grpc_server = _BoundGRPCServer(
            host,
            grpc_port,
            server.dataplane,
            server.model_repository_extension,
            kwargs=vars(kserve_args),
            grace_period=1,
        )
    # uvicorn re-raises the signal it caught once it has stopped: a no-op handler lets cleanup run
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)

    async def main() -> None:
        server.setup_event_loop()
        task = asyncio.create_task(grpc_server.start(server.max_threads)) if grpc_server else None
        try:
            await rest.start()
        finally:
            if grpc_server is not None and task is not None:
                await grpc_server.stop()
                task.cancel()

    asyncio.run(main())
