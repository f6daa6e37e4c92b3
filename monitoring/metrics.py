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


# --- canary rollouts (flywheel.serving.rollout, `flywheel rollout analyze`) ------------------------

ROLLOUT_DECISIONS = Counter(
    "flywheel_rollout_decisions",
    "Decisions of the canary analysis: raise, promote, rollback, hold.",
    ["decision"],
    registry=REGISTRY,
)
ROLLOUT_STAGE = Gauge(
    "flywheel_rollout_stage",
    "Stage (index into the schedule) of the running rollout after the last analysis.",
    registry=REGISTRY,
)
ROLLOUT_FRACTION = Gauge(
    "flywheel_rollout_fraction",
    "Canary fraction (0..1) the rollout analysis last set.",
    registry=REGISTRY,
)
ROLLOUT_CTR = Gauge(
    "flywheel_rollout_ctr",
    "Clicks per attributed impression of the running rollout, per variant (champion, canary).",
    ["variant"],
    registry=REGISTRY,
)
ROLLOUT_WATCH_PER_IMPRESSION = Gauge(
    "flywheel_rollout_watch_seconds_per_impression",
    "Seconds watched per attributed impression of the running rollout, per variant.",
    ["variant"],
    registry=REGISTRY,
)
ROLLOUT_P_VALUE = Gauge(
    "flywheel_rollout_p_value",
    "Always-valid (mSPRT, Bonferroni-corrected) p-value of the canary against the champion, per metric.",
    ["metric"],
    registry=REGISTRY,
)


def start_metrics_server(port: int, addr: str = "127.0.0.1") -> None:
    """Serve :data:`REGISTRY` on ``http://addr:port/metrics`` from a daemon thread."""
    start_http_server(port, addr=addr, registry=REGISTRY)
