"""The retrain trigger as a service: an Alertmanager webhook receiver (`flywheel monitor webhook`)
and the in-process path (`RetrainTrigger.handle`) that the local loop calls directly.

Every notification is decided by :func:`flywheel.monitoring.trigger.decide` under a lock
(single-flight holds even when two notifications arrive at once), written to the audit log and
counted; a started retraining runs in a background thread through a runner (kfp.local locally,
Kubeflow Pipelines on a cluster, see :mod:`monitoring.retrain`), retried with exponential backoff
(tenacity) when the runner cannot be reached, and its outcome is audited when it ends.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tenacity import RetryCallState, Retrying, stop_after_attempt, wait_exponential

from flywheel.monitoring.trigger import (
    AlertmanagerError,
    AuditRecord,
    Decision,
    TriggerRules,
    append_audit,
    decide,
    parse_notification,
    read_audit,
    state_from_audit,
)
from monitoring import metrics

log = logging.getLogger(__name__)
Runner = Callable[[str], dict[str, Any]]
"""Runs (or submits) one retraining with the given run id; returns its outcome as a dict with a
``status`` (registered, stopped, failed, submitted). Raises when the runner cannot be reached."""
MAX_BODY = 1 << 20


class RetrainTrigger:
    """Decides on notifications, audits every decision and runs the retrainings it starts."""

    def __init__(
        self,
        *,
        rules: TriggerRules,
        audit_path: str | Path,
        runner: Runner,
        retry_attempts: int = 4,
        retry_backoff_seconds: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rules, self.audit_path, self.runner = rules, Path(audit_path), runner
        self.retry_attempts, self.retry_backoff_seconds, self.clock = retry_attempts, retry_backoff_seconds, clock
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def _audit(self, record: AuditRecord) -> None:
        append_audit(self.audit_path, record)
        metrics.RETRAIN_DECISIONS.labels(f"{record.action}:{record.guard}").inc()

    def handle(self, body: bytes) -> tuple[int, dict[str, Any]]:
        """Decide on one webhook body; returns (HTTP status, JSON answer). Malformed: 400 + audit line."""
        try:
            notification = parse_notification(body)
        except AlertmanagerError as exc:
            self._audit(AuditRecord(self.clock(), "reject", "malformed", str(exc)))
            return 400, {"error": str(exc)}
        with self._lock:
            now = self.clock()
            decision: Decision = decide(
                notification, now_s=now, state=state_from_audit(read_audit(self.audit_path)), rules=self.rules
            )
            run_id = f"retrain-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(now))}-{uuid.uuid4().hex[:6]}"
            started = decision.action == "start"
            self._audit(
                AuditRecord(
                    now, decision.action, decision.guard, decision.reason, decision.alert, run_id if started else None
                )
            )
        answer: dict[str, Any] = {"action": decision.action, "guard": decision.guard, "reason": decision.reason}
        if started:
            answer["run_id"] = run_id
            metrics.RETRAIN_RUNNING.set(1)
            thread = threading.Thread(target=self._run, args=(run_id,), name=run_id, daemon=True)
            self._threads.append(thread)
            thread.start()
        return 200, answer

    def _run(self, run_id: str) -> None:
        def say_retry(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            reason = f"runner unreachable (attempt {state.attempt_number}): {error}; retrying in {wait:.1f} s"
            log.warning("%s: %s", run_id, reason)
            append_audit(self.audit_path, AuditRecord(self.clock(), "retry", "runner", reason, run_id=run_id))

        try:
            for attempt in Retrying(
                stop=stop_after_attempt(self.retry_attempts),
                wait=wait_exponential(multiplier=self.retry_backoff_seconds, max=300),
                before_sleep=say_retry,
                reraise=True,
            ):
                with attempt:
                    outcome = self.runner(run_id)
        except Exception as exc:  # noqa: BLE001 - any runner failure ends the run as failed, audited
            outcome = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
        status = str(outcome.get("status", "unknown"))
        reason = str(outcome.get("reason", "")) or status
        self._audit(AuditRecord(self.clock(), "finish", status, reason[-500:], run_id=run_id, outcome=outcome))
        metrics.RETRAIN_RUNS.labels(status).inc()
        if status in ("registered", "stopped", "submitted"):
            metrics.PIPELINE_LAST_SUCCESS.labels("retraining").set(time.time())
        metrics.RETRAIN_RUNNING.set(0)

    def wait(self, timeout_s: float | None = None) -> None:
        """Block until every retraining this trigger started has finished."""
        for thread in list(self._threads):
            thread.join(timeout_s)


def webhook_server(trigger: RetrainTrigger, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server (not yet serving) that answers Alertmanager's POSTs with ``trigger.handle``;
    GET /healthz answers 200."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, code: int, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._answer(413, {"error": f"body of {length} bytes is over {MAX_BODY}"})
                return
            code, payload = trigger.handle(self.rfile.read(length))
            self._answer(code, payload)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.rstrip("/") == "/healthz":
                self._answer(200, {"status": "ok"})
            else:
                self._answer(404, {"error": f"no route {self.path}; POST Alertmanager notifications to /"})

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
            log.debug(format, *args)

    return ThreadingHTTPServer((host, port), Handler)
