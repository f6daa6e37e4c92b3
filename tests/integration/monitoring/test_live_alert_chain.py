"""The live chain on 127.0.0.1: a real model server (`flywheel serve`) and the drift job's metrics
endpoint -> a real Prometheus (scraping both every second, the repository's drift rules with `for:`
shortened) -> a real Alertmanager (the repository's routing) -> the retrain trigger's webhook. The
server's request counts per variant reach Prometheus; drift injected by the simulator (devices and
tastes shift on day 2) fires the alert; exactly one retraining starts; the alert flapping
(resolved, then firing again) starts none more within the cooldown.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from flywheel.monitoring.trigger import AuditRecord, TriggerRules, read_audit
from flywheel.serving.client import recommend
from monitoring import metrics
from monitoring.drift_job import Reference, run_drift
from monitoring.metrics import start_metrics_server
from monitoring.trigger_service import RetrainTrigger, webhook_server
from tests.integration.monitoring.conftest import DAY_MS, DriftedWorld
from tests.support.recommender import write_bundle
from tests.support.services import alertmanager_server, free_port, model_server, prometheus_server

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
WAIT_S = 90


def _rules_with_short_for(seconds: str = "2s") -> str:
    rules = yaml.safe_load((ROOT / "monitoring" / "rules" / "drift.yaml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = seconds
    return yaml.safe_dump(rules)


def _alertmanager_config(webhook_url: str) -> str:
    config = yaml.safe_load((ROOT / "monitoring" / "alertmanager" / "alertmanager.yaml").read_text())
    config["route"].update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    for route in config["route"]["routes"]:
        route.update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook_url
    return yaml.safe_dump(config)


def _wait_for(what: str, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise TimeoutError(f"waited {WAIT_S} s for {what}")


def _query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    url = f"{prometheus}/api/v1/query?query={urllib.parse.quote(expr)}"
    with urllib.request.urlopen(url, timeout=5) as response:
        return list(json.loads(response.read())["data"]["result"])


def _audited(path: Path, predicate: Callable[[AuditRecord], bool]) -> Callable[[], bool]:
    return lambda: any(predicate(r) for r in read_audit(path))


def test_drift_fires_the_alert_and_starts_exactly_one_retraining(drifted_world: DriftedWorld, tmp_path: Path) -> None:
    start = drifted_world.start_ms
    reference = Reference(version="1", window_start_ms=start, window_end_ms=start + 2 * DAY_MS)
    day1 = pd.Timestamp(start + DAY_MS, unit="ms").isoformat()
    day2 = pd.Timestamp(start + 2 * DAY_MS, unit="ms").isoformat()
    calm, drifted = f"{day1}/{day2}", "1d"

    def check(window: str) -> float:
        (events,) = run_drift(drifted_world.config, window_spec=window, reference=reference, reports=False).results
        return events.features.share

    for gauge in (metrics.DRIFT_SHARE, metrics.TARGET_DRIFT_SCORE, metrics.FEATURE_DRIFT_SCORE):
        gauge.clear()  # gauges other tests of this process set (one registry per process)
    metrics.PREDICTION_DRIFT_SCORE.set(0.0)
    assert check(calm) < 0.3  # before the shift: nothing to alert on

    runs: list[str] = []
    audit = tmp_path / "decisions.jsonl"
    rules = TriggerRules(
        alerts=("FlywheelFeatureDrift",), debounce_seconds=0, cooldown_seconds=3600, max_runs_per_day=3
    )
    trigger = RetrainTrigger(
        rules=rules, audit_path=audit, runner=lambda run_id: runs.append(run_id) or {"status": "registered"}
    )
    hook = webhook_server(trigger, "127.0.0.1", 0)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    metrics_port = free_port()
    metrics_server, _ = start_metrics_server(metrics_port)
    bundle, _ = write_bundle(tmp_path / "bundle")
    try:
        with (
            model_server(tmp_path / "serve", "--bundle", str(bundle), "--features", "none") as served,
            alertmanager_server(
                _alertmanager_config(f"http://127.0.0.1:{hook.server_address[1]}/"), tmp_path / "am"
            ) as alertmanager,
        ):
            prometheus_config = {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": ["drift.yaml"],
                "alerting": {
                    "alertmanagers": [{"static_configs": [{"targets": [alertmanager.removeprefix("http://")]}]}]
                },
                "scrape_configs": [
                    {"job_name": "flywheel-drift", "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]},
                    {"job_name": "flywheel-serving", "static_configs": [{"targets": [served.http_url]}]},
                ],
            }
            with prometheus_server(
                yaml.safe_dump(prometheus_config), tmp_path / "prom", {"drift.yaml": _rules_with_short_for()}
            ) as prometheus:
                _wait_for(
                    "Prometheus to scrape the calm window",
                    lambda: any(
                        r["metric"].get("source") == "events" for r in _query(prometheus, "flywheel_drift_share")
                    ),
                )
                assert _query(prometheus, 'ALERTS{alertname="FlywheelFeatureDrift"}') == []

                answered = [recommend(served.http_url, f"u{i:04d}", k=4) for i in range(5)]
                assert {a.variant for a in answered} == {"champion"}
                served_count = 'flywheel_serving_requests_total{job="flywheel-serving",variant="champion",code="200"}'
                _wait_for(
                    "Prometheus to scrape the model server's request count",
                    lambda: any(float(r["value"][1]) >= 5 for r in _query(prometheus, served_count)),
                )
                stages = _query(prometheus, 'flywheel_serving_stage_seconds_count{job="flywheel-serving"}')
                assert {r["metric"]["stage"] for r in stages} >= {"features", "retrieval", "ranking", "rules"}

                assert check(drifted) >= 0.3  # the simulator's shift, seen by the drift job
                _wait_for("a retraining to start", _audited(audit, lambda r: r.action == "start"))
                trigger.wait()
                _wait_for(
                    "the events stream's drift alert to fire",
                    lambda: (
                        "events"
                        in {
                            r["metric"]["source"]
                            for r in _query(prometheus, 'ALERTS{alertname="FlywheelFeatureDrift",alertstate="firing"}')
                        }
                    ),
                )

                check(calm)  # the alert resolves ...
                _wait_for("the resolved notification", _audited(audit, lambda r: r.guard == "resolved"))
                check(drifted)  # ... and fires again: within the cooldown, no second retraining
                _wait_for("the cooldown decision", _audited(audit, lambda r: r.guard == "cooldown"))
    finally:
        metrics_server.shutdown()
        hook.shutdown()
        hook.server_close()
    assert len(runs) == 1
    decisions = [(r.action, r.guard) for r in read_audit(audit)]
    assert decisions.count(("start", "fired")) == 1
    assert ("finish", "registered") in decisions
