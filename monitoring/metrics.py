"""Every Prometheus metric of Flywheel, in one module.

Names start with ``flywheel_``; labels are low-cardinality (a step, a rejection code, a
partition number, a feature view; never a user or an event id). The metrics live in
:data:`REGISTRY`, which :func:`start_metrics_server` exposes. Defining a metric only creates an
in-memory object: importing this module starts no server and touches no file.
"""

from __future__ import annotations

from threading import Thread
from wsgiref.simple_server import WSGIServer

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
STREAM_EXCHANGED_ITEMS = Counter(
    "flywheel_stream_exchanged_items",
    "Items (per-title updates, dead letters, late events) a step received from another process.",
    ["step"],
    registry=REGISTRY,
)
STREAM_REPLAYED_SKIPPED = Counter(
    "flywheel_stream_replayed_skipped",
    "Updates a step skipped because its restored state already held them (a replay after a crash).",
    ["step"],
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


# --- monitoring: drift, data quality, skew, retrain trigger (monitoring/, flywheel.monitoring) ---------

DRIFT_SHARE = Gauge(
    "flywheel_drift_share",
    "Share of the compared features that drifted in the last window, by source (predictions, events).",
    ["source"],
    registry=REGISTRY,
)
FEATURE_DRIFT_SCORE = Gauge(
    "flywheel_feature_drift_score",
    "Population stability index of one feature in the last window against the champion's training reference.",
    ["source", "feature"],
    registry=REGISTRY,
)
PREDICTION_DRIFT_SCORE = Gauge(
    "flywheel_prediction_drift_score",
    "Population stability index of the served scores in the last window against the reference scores.",
    registry=REGISTRY,
)
TARGET_DRIFT_SCORE = Gauge(
    "flywheel_target_drift_score",
    "Relative change of a target rate (ctr, watch_50_rate) in the last window against the reference.",
    ["target"],
    registry=REGISTRY,
)
MONITOR_WINDOW_ROWS = Gauge(
    "flywheel_monitor_window_rows",
    "Records in the last monitored window, by source.",
    ["source"],
    registry=REGISTRY,
)
MONITOR_INSUFFICIENT_DATA = Gauge(
    "flywheel_monitor_insufficient_data",
    "1 when the last window of a source had too few records to decide drift (no drift is reported), else 0.",
    ["source"],
    registry=REGISTRY,
)
MONITOR_LAST_RUN = Gauge(
    "flywheel_monitor_last_run_timestamp_seconds",
    "Unix time at which a monitoring job (drift, skew) last finished.",
    ["job"],
    registry=REGISTRY,
)
DATA_QUALITY_VOLUME_RATIO = Gauge(
    "flywheel_data_quality_volume_ratio",
    "Records per hour in the last window as a multiple of the reference's rate, by source.",
    ["source"],
    registry=REGISTRY,
)
DATA_QUALITY_STALENESS = Gauge(
    "flywheel_data_quality_staleness_seconds",
    "Age of the newest record at the end of the last window, by source.",
    ["source"],
    registry=REGISTRY,
)
DATA_QUALITY_NULL_RATE = Gauge(
    "flywheel_data_quality_null_rate",
    "Worst share of missing values of any feature in the last window, by source.",
    ["source"],
    registry=REGISTRY,
)
DATA_QUALITY_OUT_OF_RANGE = Gauge(
    "flywheel_data_quality_out_of_range_values",
    "Values outside their allowed range in the last window, by source.",
    ["source"],
    registry=REGISTRY,
)
FEATURE_FRESHNESS = Gauge(
    "flywheel_feature_freshness_seconds",
    "Age of the newest row of a Feast feature view when the monitoring job last looked.",
    ["view"],
    registry=REGISTRY,
)
ONLINE_CTR = Gauge(
    "flywheel_online_ctr",
    "Clicks per impression in the last window whose feedback has arrived, by variant of the impression's context.",
    ["variant"],
    registry=REGISTRY,
)
SKEW_SHARE = Gauge(
    "flywheel_skew_share",
    "Share of the compared features whose served values disagree with the offline store (last skew run).",
    registry=REGISTRY,
)
SKEW_FEATURE_MISMATCH = Gauge(
    "flywheel_skew_feature_mismatch_share",
    "Share of one feature's served values that disagree with the offline store (last skew run).",
    ["feature"],
    registry=REGISTRY,
)
RETRAIN_DECISIONS = Counter(
    "flywheel_retrain_decisions",
    "Decisions of the retrain trigger, by decision (action:guard, e.g. start:fired, skip:cooldown).",
    ["decision"],
    registry=REGISTRY,
)
RETRAIN_RUNS = Counter(
    "flywheel_retrain_runs",
    "Retrainings that ended, by outcome (registered, stopped, failed, submitted).",
    ["outcome"],
    registry=REGISTRY,
)
RETRAIN_RUNNING = Gauge(
    "flywheel_retrain_running",
    "1 while a retraining started by the trigger is in flight, else 0.",
    registry=REGISTRY,
)
PIPELINE_LAST_SUCCESS = Gauge(
    "flywheel_pipeline_last_success_timestamp_seconds",
    "Unix time at which a pipeline (training, retraining, drift job) last finished successfully.",
    ["pipeline"],
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


def start_metrics_server(port: int, addr: str = "127.0.0.1") -> tuple[WSGIServer, Thread]:
    """Serve :data:`REGISTRY` on ``http://addr:port/metrics`` from a daemon thread; returns the
    server (``shutdown()`` stops it) and its thread."""
    return start_http_server(port, addr=addr, registry=REGISTRY)
