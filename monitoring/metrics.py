"""Every Prometheus metric of Flywheel, in one module.

Names start with ``flywheel_``; labels are low-cardinality (a step, a rejection code, a
partition number, a feature view; never a user or an event id). The metrics live in
:data:`REGISTRY`, which :func:`start_metrics_server` exposes. Defining a metric only creates an
in-memory object: importing this module starts no server and touches no file.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)
"""The registry of every Flywheel metric."""

# --- streaming features (streaming/, flywheel.stream) -------------------------------------------

STREAM_EVENTS_IN = Counter(
    "flywheel_stream_events_in",
    "Records read from the events topic by the streaming dataflow.",
    registry=REGISTRY,
)
STREAM_EVENTS_PROCESSED = Counter(
    "flywheel_stream_events_processed",
    "Valid, new, not-too-late events folded into the streaming features.",
    registry=REGISTRY,
)
STREAM_EVENTS_DLQ = Counter(
    "flywheel_stream_events_dlq",
    "Records sent to the dead-letter topic, by the code of their first rejection.",
    ["code"],
    registry=REGISTRY,
)
STREAM_EVENTS_LATE = Counter(
    "flywheel_stream_events_late",
    "Events behind their user's watermark, sent to the late-events topic.",
    registry=REGISTRY,
)
STREAM_EVENTS_LATE_ALLOWED = Counter(
    "flywheel_stream_events_late_allowed",
    "Out-of-order events within the allowed lateness (processed, and counted in processed too).",
    registry=REGISTRY,
)
STREAM_EVENTS_DUPLICATE = Counter(
    "flywheel_stream_events_duplicate",
    "Repeated event ids caught within the dedup horizon.",
    registry=REGISTRY,
)
STREAM_CONSUMER_LAG = Gauge(
    "flywheel_stream_consumer_lag_events",
    "Records between the dataflow's read position and the head of a partition.",
    ["topic", "partition"],
    registry=REGISTRY,
)
STREAM_BATCH_SECONDS = Histogram(
    "flywheel_stream_batch_seconds",
    "Time a dataflow step spends on one batch.",
    ["step"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
STREAM_FEATURES_PUSHED = Counter(
    "flywheel_stream_features_pushed",
    "Feature rows pushed by the streaming dataflow, by feature view.",
    ["view"],
    registry=REGISTRY,
)
STREAM_RUN_EVENTS = Gauge(
    "flywheel_stream_run_events",
    "Reconciliation of the last finished run: events by outcome (in, processed, dlq, late, duplicates).",
    ["outcome"],
    registry=REGISTRY,
)
STREAM_RUN_BALANCED = Gauge(
    "flywheel_stream_run_balanced",
    "1 when the last finished run reconciled (in = processed + dlq + late + duplicates), else 0.",
    registry=REGISTRY,
)


# --- serving (serving/, flywheel.serving) -----------------------------------------------------------

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

SERVING_REQUESTS = Counter(
    "flywheel_serving_requests",
    "Recommendation requests answered, by variant and HTTP-style status code (200, 400, 500).",
    ["variant", "code"],
    registry=REGISTRY,
)
SERVING_REQUEST_SECONDS = Histogram(
    "flywheel_serving_request_seconds",
    "Time to answer one recommendation request inside the model server, by variant.",
    ["variant"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
SERVING_STAGE_SECONDS = Histogram(
    "flywheel_serving_stage_seconds",
    "Time of one stage of the recommend path (features, retrieval, ranking, rules), by variant.",
    ["stage", "variant"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
SERVING_ERRORS = Counter(
    "flywheel_serving_errors",
    "Requests that failed, by variant and kind (bad_request, internal).",
    ["variant", "kind"],
    registry=REGISTRY,
)
SERVING_DEGRADED = Counter(
    "flywheel_serving_degraded",
    "Requests answered in a degraded way, by reason (feature_store: default features; triton: in-process ranker).",
    ["reason"],
    registry=REGISTRY,
)
SERVING_SHADOW_OVERLAP = Histogram(
    "flywheel_serving_shadow_overlap",
    "Share of the answer's titles that the shadow model also returned, per mirrored request.",
    buckets=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    registry=REGISTRY,
)
SERVING_SHADOW_SCORE_DELTA = Histogram(
    "flywheel_serving_shadow_score_delta",
    "Mean absolute score difference between the answer and the shadow over the titles both returned.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
SERVING_SHADOW_ERRORS = Counter(
    "flywheel_serving_shadow_errors",
    "Shadow copies that failed or were dropped because the shadow was busy.",
    registry=REGISTRY,
)
SERVING_CANARY_FRACTION = Gauge(
    "flywheel_serving_canary_fraction",
    "Share of users the canary answers now (0 when no rollout is running).",
    registry=REGISTRY,
)
SERVING_MODEL_INFO = Gauge(
    "flywheel_serving_model_info",
    "1 for each variant and the model version it serves now.",
    ["variant", "version"],
    registry=REGISTRY,
)


def start_metrics_server(port: int, addr: str = "127.0.0.1") -> None:
    """Serve :data:`REGISTRY` on ``http://addr:port/metrics`` from a daemon thread."""
    start_http_server(port, addr=addr, registry=REGISTRY)
