"""Writes the Grafana dashboards (JSON, schema 39) of monitoring/dashboards/ from the compact
specification below: `python -m monitoring.dashboards.build` after an edit, and commit the JSON.
The chart loads the JSON files; tests/integration/monitoring/test_dashboards.py checks them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def quantile(q: float, histogram: str, by: str) -> str:
    """PromQL of the ``q`` quantile of a histogram over 5 minutes, by the labels ``by``."""
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({histogram}_bucket[5m])))"


Panel = tuple[str, str, list[tuple[str, str]], str]
"""(title, kind: timeseries | stat | bargauge, [(PromQL, legend)], unit)."""

DASHBOARDS: dict[str, tuple[str, list[Panel]]] = {
    "drift-and-quality": (
        "Flywheel / Drift and data quality",
        [
            (
                "Drifted share of features",
                "timeseries",
                [("max by (source) (flywheel_drift_share)", "{{source}}")],
                "percentunit",
            ),
            (
                "Feature drift (PSI) by feature",
                "timeseries",
                [("max by (source, feature) (flywheel_feature_drift_score)", "{{source}} {{feature}}")],
                "none",
            ),
            ("Prediction (score) drift, PSI", "timeseries", [("flywheel_prediction_drift_score", "scores")], "none"),
            (
                "Target drift (relative change)",
                "timeseries",
                [("flywheel_target_drift_score", "{{target}}")],
                "percentunit",
            ),
            ("Training-serving skew (share of features)", "stat", [("flywheel_skew_share", "skew")], "percentunit"),
            (
                "Skew by feature (mismatch share)",
                "bargauge",
                [("flywheel_skew_feature_mismatch_share", "{{feature}}")],
                "percentunit",
            ),
            (
                "Window volume vs reference rate",
                "timeseries",
                [("flywheel_data_quality_volume_ratio", "{{source}}")],
                "none",
            ),
            ("Records per window", "timeseries", [("flywheel_monitor_window_rows", "{{source}}")], "short"),
            ("Newest record age", "timeseries", [("flywheel_data_quality_staleness_seconds", "{{source}}")], "s"),
            ("Worst null rate", "timeseries", [("flywheel_data_quality_null_rate", "{{source}}")], "percentunit"),
            (
                "Values out of range",
                "timeseries",
                [("flywheel_data_quality_out_of_range_values", "{{source}}")],
                "short",
            ),
            (
                "Insufficient data (1 = undecided)",
                "stat",
                [("flywheel_monitor_insufficient_data", "{{source}}")],
                "bool",
            ),
        ],
    ),
    "serving-latency-throughput": (
        "Flywheel / Serving latency and throughput per variant",
        [
            (
                "Requests per second by variant",
                "timeseries",
                [("sum by (variant) (rate(flywheel_serving_requests_total[5m]))", "{{variant}}")],
                "reqps",
            ),
            (
                "p50 / p99 latency by variant",
                "timeseries",
                [
                    (
                        quantile(0.5, "flywheel_serving_request_seconds", "variant"),
                        "p50 {{variant}}",
                    ),
                    (
                        quantile(0.99, "flywheel_serving_request_seconds", "variant"),
                        "p99 {{variant}}",
                    ),
                ],
                "s",
            ),
            (
                "p99 by stage",
                "timeseries",
                [
                    (
                        quantile(0.99, "flywheel_serving_stage_seconds", "stage, variant"),
                        "{{variant}} {{stage}}",
                    )
                ],
                "s",
            ),
            (
                "Error rate by variant",
                "timeseries",
                [
                    (
                        'sum by (variant) (rate(flywheel_serving_requests_total{code=~"5.."}[5m])) '
                        "/ sum by (variant) (rate(flywheel_serving_requests_total[5m]))",
                        "{{variant}}",
                    )
                ],
                "percentunit",
            ),
            (
                "Errors by kind",
                "timeseries",
                [("sum by (variant, kind) (rate(flywheel_serving_errors_total[5m]))", "{{variant}} {{kind}}")],
                "reqps",
            ),
            (
                "Degraded answers by reason",
                "timeseries",
                [("sum by (reason) (rate(flywheel_serving_degraded_total[5m]))", "{{reason}}")],
                "reqps",
            ),
        ],
    ),
    "canary-rollout": (
        "Flywheel / Canary progress and decisions",
        [
            ("Canary fraction", "timeseries", [("flywheel_serving_canary_fraction", "canary")], "percentunit"),
            ("Rollout stage", "stat", [("flywheel_rollout_stage", "stage")], "short"),
            (
                "Rollout decisions",
                "timeseries",
                [("sum by (decision) (increase(flywheel_rollout_decisions_total[1h]))", "{{decision}}")],
                "short",
            ),
            (
                "Model versions served",
                "stat",
                [("max by (variant, version) (flywheel_serving_model_info)", "{{variant}} v{{version}}")],
                "none",
            ),
            (
                "Shadow overlap with the champion (median)",
                "timeseries",
                [
                    (
                        "histogram_quantile(0.5, sum by (le) (rate(flywheel_serving_shadow_overlap_bucket[5m])))",
                        "overlap",
                    )
                ],
                "percentunit",
            ),
            ("Shadow errors", "timeseries", [("rate(flywheel_serving_shadow_errors_total[5m])", "errors")], "reqps"),
        ],
    ),
    "features-freshness-lag": (
        "Flywheel / Feature freshness and stream lag",
        [
            ("Feature view age", "timeseries", [("flywheel_feature_freshness_seconds", "{{view}}")], "s"),
            (
                "Stream consumer lag",
                "timeseries",
                [("sum by (topic) (flywheel_stream_consumer_lag_events)", "{{topic}}")],
                "short",
            ),
            (
                "Events in / processed per second",
                "timeseries",
                [
                    ("rate(flywheel_stream_events_in_total[5m])", "in"),
                    ("rate(flywheel_stream_events_processed_total[5m])", "processed"),
                ],
                "ops",
            ),
            (
                "Dead-lettered events by code",
                "timeseries",
                [("sum by (code) (rate(flywheel_stream_events_dlq_total[5m]))", "{{code}}")],
                "ops",
            ),
            (
                "Late and duplicate events",
                "timeseries",
                [
                    ("rate(flywheel_stream_events_late_total[5m])", "late"),
                    ("rate(flywheel_stream_events_duplicate_total[5m])", "duplicate"),
                ],
                "ops",
            ),
            (
                "Feature rows pushed by view",
                "timeseries",
                [("sum by (view) (rate(flywheel_stream_features_pushed_total[5m]))", "{{view}}")],
                "ops",
            ),
            (
                "Batch time p99 by step",
                "timeseries",
                [
                    (
                        "histogram_quantile(0.99, sum by (step, le) (rate(flywheel_stream_batch_seconds_bucket[5m])))",
                        "{{step}}",
                    )
                ],
                "s",
            ),
        ],
    ),
    "pipelines-retraining": (
        "Flywheel / Pipeline runs and retrain decisions",
        [
            (
                "Retrain decisions",
                "timeseries",
                [("sum by (decision) (increase(flywheel_retrain_decisions_total[1h]))", "{{decision}}")],
                "short",
            ),
            (
                "Retrainings by outcome",
                "bargauge",
                [("sum by (outcome) (flywheel_retrain_runs_total)", "{{outcome}}")],
                "short",
            ),
            ("Retraining in flight", "stat", [("flywheel_retrain_running", "running")], "bool"),
            (
                "Time since the last success",
                "stat",
                [("time() - max by (pipeline) (flywheel_pipeline_last_success_timestamp_seconds)", "{{pipeline}}")],
                "s",
            ),
            (
                "Time since a monitoring job finished",
                "stat",
                [("time() - max by (job) (flywheel_monitor_last_run_timestamp_seconds)", "{{job}}")],
                "s",
            ),
        ],
    ),
    "experiment-guardrails": (
        "Flywheel / Experiment guardrails",
        [
            ("Online CTR by variant", "timeseries", [("flywheel_online_ctr", "{{variant}}")], "percentunit"),
            (
                "Target drift (CTR, watch > 50%)",
                "timeseries",
                [("flywheel_target_drift_score", "{{target}}")],
                "percentunit",
            ),
            (
                "Guardrail: p99 latency by variant",
                "timeseries",
                [
                    (
                        quantile(0.99, "flywheel_serving_request_seconds", "variant"),
                        "{{variant}}",
                    )
                ],
                "s",
            ),
            (
                "Guardrail: error rate by variant",
                "timeseries",
                [
                    (
                        'sum by (variant) (rate(flywheel_serving_requests_total{code=~"5.."}[5m])) '
                        "/ sum by (variant) (rate(flywheel_serving_requests_total[5m]))",
                        "{{variant}}",
                    )
                ],
                "percentunit",
            ),
            (
                "Traffic share by variant",
                "timeseries",
                [
                    (
                        "sum by (variant) (rate(flywheel_serving_requests_total[5m])) "
                        "/ ignoring(variant) group_left sum(rate(flywheel_serving_requests_total[5m]))",
                        "{{variant}}",
                    )
                ],
                "percentunit",
            ),
            (
                "Rollout decisions (promote / rollback)",
                "timeseries",
                [("sum by (decision) (increase(flywheel_rollout_decisions_total[1h]))", "{{decision}}")],
                "short",
            ),
        ],
    ),
}


def panel(index: int, spec: Panel) -> dict[str, Any]:
    """One Grafana panel on a 2-column grid."""
    title, kind, queries, unit = spec
    return {
        "id": index + 1,
        "type": kind,
        "title": title,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}} if kind == "timeseries" else {},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(queries)
        ],
    }


def dashboard(uid: str, title: str, panels: list[Panel]) -> dict[str, Any]:
    """A whole dashboard with a Prometheus data-source variable."""
    return {
        "uid": f"flywheel-{uid}",
        "title": title,
        "tags": ["flywheel"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "utc",
        "templating": {
            "list": [{"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}]
        },
        "panels": [panel(i, p) for i, p in enumerate(panels)],
    }


def main() -> None:
    """Write every dashboard's JSON next to this file."""
    for uid, (title, panels) in DASHBOARDS.items():
        path = HERE / f"{uid}.json"
        path.write_text(json.dumps(dashboard(uid, title, panels), indent=2) + "\n", encoding="utf-8")
        print(path)


if __name__ == "__main__":
    main()
