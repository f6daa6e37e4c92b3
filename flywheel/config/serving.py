"""Configuration of the model server (owned by flywheel.serving and serving/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from flywheel.config.base import Section


class RulesConfig(Section):
    """The business rules applied to the ranked list before it is returned."""

    max_per_genre: int = Field(default=3, ge=1)
    """Titles of one primary genre allowed in the top K (new releases are exempt)."""
    max_per_creator: int = Field(default=2, ge=1)
    """Titles of one creator allowed in the top K (new releases are exempt)."""
    new_release_days: float = Field(default=14.0, ge=0)
    """A title released this many days ago or less is a new release: never capped."""


class TritonConfig(Section):
    """The Triton predictor that ranks the candidates (KServe's predictor_host)."""

    url: str | None = None
    """host:port of a Triton HTTP endpoint serving the champion's ranker; None ranks in-process."""
    canary_url: str | None = None
    """host:port of the canary's Triton (one predictor per variant on a cluster); None: ``url``."""
    shadow_url: str | None = None
    """host:port of the shadow's Triton; None: ``url``."""
    model_name: str = "ranker"
    """Name of the ranker model in the Triton model repository."""
    timeout_s: float = Field(default=1.0, gt=0)
    """Time allowed for one ranking call; on timeout or error the server ranks in-process (degraded)."""
    http_port: int = Field(default=8000, ge=0, le=65535)
    """HTTP port of the local tritonserver that `flywheel serve --triton` starts (0: a free port)."""
    grpc_port: int = Field(default=8001, ge=0, le=65535)
    """gRPC port of the local tritonserver that `flywheel serve --triton` starts (0: a free port)."""
    startup_timeout_s: float = Field(default=120.0, gt=0)
    """Time allowed for the local tritonserver to report the ranker ready."""

    @field_validator("url", "canary_url", "shadow_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    def url_for(self, variant: str) -> str | None:
        """The predictor of a variant (``champion``, ``canary`` or ``shadow``)."""
        own = {"canary": self.canary_url, "shadow": self.shadow_url}.get(variant)
        return own or self.url


class ServingConfig(Section):
    """The KServe model server: ports, model, candidates, rules, rollout polling, prediction log."""

    host: str = "127.0.0.1"
    """Address the HTTP and gRPC servers bind (0.0.0.0 in a container)."""
    http_port: int = Field(default=8080, ge=0, le=65535)
    """HTTP port: Open Inference Protocol v2, KServe v1, /metrics."""
    grpc_port: int = Field(default=8081, ge=0, le=65535)
    """gRPC port (Open Inference Protocol v2); 0 disables gRPC."""
    model_name: str = "recommender"
    """Name of the served model in the inference protocol."""
    feature_source: Literal["online", "none"] = "online"
    """`online`: the feature platform's online store (Feast); `none`: default features (cold start for all)."""
    bundle_dir: Path | None = None
    """Serve this model bundle folder (spec, towers, ranker, catalog.parquet) instead of the registry."""
    model_cache_dir: Path = Path(".flywheel/serving/models")
    """Where registered versions are downloaded to."""
    poll_interval_s: float = Field(default=10.0, gt=0)
    """How often the server reads the registry's aliases and rollout tags (reload on change)."""
    access_log: bool = False
    """Log every request (uvicorn's access line and KServe's latency lines, three per request). Off
    by default: the request counters, latency histograms, spans and prediction log record each
    request already, and the lines cost about a tenth of the server's throughput."""
    gil_switch_interval_ms: float = Field(default=1.0, gt=0)
    """Python's GIL switch interval in the server (``sys.setswitchinterval``; Python's default is 5 ms):
    the server's threads (the event loop, the request threads where there are any, the shadow's and
    the prediction log's) pass the GIL around every NumPy and torch call; with two request threads a
    shorter wait raised the throughput at 8 clients from about 192 to 201 requests/s on 2 cores."""
    request_threads: int | None = Field(default=None, ge=0)
    """Threads that prepare and rank requests (about one per core: torch, faiss and NumPy release the
    GIL, so requests overlap on the cores, at two thread hand-offs a request); 0: the event loop does
    both; empty: the event loop, but for the Triton call, which waits on the network and runs on 2
    threads while the loop prepares other requests. On 2 cores with the clients on the same machine
    the event loop gave one client a p50 about 0.9 ms lower and 8 clients more requests a second
    (docs/serving.md). Set threads where the feature store may be slow to answer: on the event loop,
    health probes wait with it."""
    default_k: int = Field(default=10, ge=1)
    """Items returned when the request gives no k."""
    max_k: int = Field(default=100, ge=1)
    """Largest k a request may ask for (a larger one is a 400)."""
    max_exclude: int = Field(default=1000, ge=0)
    """Most titles a request may list in `exclude`."""
    rules: RulesConfig = RulesConfig()
    """The business rules."""
    triton: TritonConfig = TritonConfig()
    """The Triton ranker."""
    shadow_workers: int = Field(default=1, ge=1)
    """Threads answering shadow copies (never on the request path)."""
    shadow_queue: int = Field(default=64, ge=1)
    """Shadow copies waiting at most; beyond it copies are dropped and counted as shadow errors."""
    prediction_log_sample_rate: float = Field(default=1.0, ge=0, le=1)
    """Share of requests written to the predictions topic (chosen by request id, so all variants agree)."""
    prediction_log_flush_ms: float = Field(default=200.0, gt=0)
    """How often the writer's thread writes the records queued since (about the longest one waits)."""

    @field_validator("bundle_dir", "request_threads", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    def steps_on_threads(self, *, local_triton: bool) -> tuple[int, bool]:
        """(request threads, whether preparing runs on them too) for a server that starts its own
        Triton (``local_triton``) or not; ranking runs on the threads when there are any."""
        if self.request_threads is not None:
            return self.request_threads, True
        on_triton = local_triton or any(self.triton.url_for(v) for v in ("champion", "canary"))
        return (2 if on_triton else 0), False

    @model_validator(mode="after")
    def _check(self) -> ServingConfig:
        if self.default_k > self.max_k:
            raise ValueError(f"default_k ({self.default_k}) is larger than max_k ({self.max_k})")
        return self
