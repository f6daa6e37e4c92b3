"""The retrain trigger's rules: read an Alertmanager notification, then decide whether a
retraining starts, guarded by debounce, single-flight, cooldown and a daily budget.

The guards read a :class:`TriggerState` that is rebuilt from the audit log (one JSON line per
decision), so a restarted receiver keeps its cooldown and budget. Everything here is pure: the
receiver (monitoring/webhook.py) passes the clock in and writes the audit lines.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

Action = Literal["start", "skip", "reject", "finish", "retry"]
DAY_SECONDS = 86_400.0


class AlertmanagerError(ValueError):
    """A webhook body that is not an Alertmanager notification; the message says why."""


class Alert(BaseModel):
    """One alert of an Alertmanager notification (webhook payload version 4)."""

    model_config = ConfigDict(extra="allow")
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    startsAt: str = ""  # noqa: N815 - Alertmanager's field name
    fingerprint: str = ""


class Notification(BaseModel):
    """An Alertmanager webhook notification."""

    model_config = ConfigDict(extra="allow")
    version: str = "4"
    status: Literal["firing", "resolved"]
    receiver: str = ""
    alerts: list[Alert]


def parse_notification(body: bytes) -> Notification:
    """Parse a webhook body.

    Raises:
        AlertmanagerError: Not JSON, or not the Alertmanager shape (names the field at fault).
    """
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AlertmanagerError(f"body is not JSON: {exc}") from exc
    try:
        notification = Notification.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<body>"
        raise AlertmanagerError(f"not an Alertmanager notification: field '{where}': {first['msg']}") from exc
    if not notification.alerts:
        raise AlertmanagerError("not an Alertmanager notification: 'alerts' is empty")
    return notification


@dataclass(frozen=True, slots=True)
class Decision:
    """What the trigger decided about one notification, and why."""

    action: Action
    guard: str
    """The rule that decided: fired | not_retrain_alert | resolved | debounce | single_flight |
    cooldown | daily_budget | malformed | outcome."""
    reason: str
    alert: str = ""


@dataclass(frozen=True, slots=True)
class TriggerState:
    """What the guards need to know, rebuilt from the audit log."""

    last_notice_s: float | None = None
    """When the last retrain-asking notification arrived (acted on or not)."""
    started_s: tuple[float, ...] = ()
    """When every retraining started."""
    running: str | None = None
    """The run in flight (started and not finished), if any."""


@dataclass(frozen=True, slots=True)
class TriggerRules:
    """The guard settings (from :class:`flywheel.config.monitoring.TriggerConfig`)."""

    alerts: tuple[str, ...]
    debounce_seconds: float
    cooldown_seconds: float
    max_runs_per_day: int


def decide(notification: Notification, *, now_s: float, state: TriggerState, rules: TriggerRules) -> Decision:
    """Whether ``notification`` starts a retraining, checking the guards in order: a retrain
    alert that is firing, debounce, single-flight, cooldown, daily budget."""
    firing = [a for a in notification.alerts if a.status == "firing"]
    asking = [a.labels.get("alertname", "") for a in firing if a.labels.get("alertname", "") in rules.alerts]
    if not asking:
        names = sorted({a.labels.get("alertname", "?") for a in notification.alerts})
        if not firing:
            return Decision("skip", "resolved", f"no firing alert ({', '.join(names)} resolved)", ",".join(names))
        return Decision("skip", "not_retrain_alert", f"{', '.join(names)}: not a retrain alert", ",".join(names))
    alert = ",".join(sorted(set(asking)))
    if state.last_notice_s is not None and now_s - state.last_notice_s < rules.debounce_seconds:
        ago = now_s - state.last_notice_s
        return Decision("skip", "debounce", f"previous request {ago:.0f} s ago (< {rules.debounce_seconds:g} s)", alert)
    if state.running is not None:
        return Decision("skip", "single_flight", f"retraining {state.running} is still running", alert)
    if state.started_s and now_s - state.started_s[-1] < rules.cooldown_seconds:
        ago = now_s - state.started_s[-1]
        left = rules.cooldown_seconds - ago
        reason = f"last retraining started {ago:.0f} s ago; cooldown {left:.0f} s left"
        return Decision("skip", "cooldown", reason, alert)
    today = [t for t in state.started_s if now_s - t < DAY_SECONDS]
    if len(today) >= rules.max_runs_per_day:
        reason = f"{len(today)} retrainings in 24 h (max {rules.max_runs_per_day})"
        return Decision("skip", "daily_budget", reason, alert)
    return Decision("start", "fired", f"{alert} firing; every guard passed", alert)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One line of the audit log."""

    time_s: float
    action: Action
    guard: str
    reason: str
    alert: str = ""
    run_id: str | None = None
    outcome: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """One JSON line."""
        return json.dumps(asdict(self), sort_keys=True, default=str)


def state_from_audit(records: Iterable[AuditRecord]) -> TriggerState:
    """Rebuild the guards' state: notices, starts, and the run started without a ``finish`` line."""
    last_notice: float | None = None
    started: list[float] = []
    open_runs: dict[str, None] = {}
    for rec in records:
        if rec.action in ("start", "skip") and rec.guard not in ("not_retrain_alert", "resolved"):
            last_notice = rec.time_s
        if rec.action == "start":
            started.append(rec.time_s)
            if rec.run_id:
                open_runs[rec.run_id] = None
        elif rec.action == "finish" and rec.run_id:
            open_runs.pop(rec.run_id, None)
    running = next(reversed(open_runs), None) if open_runs else None
    return TriggerState(last_notice_s=last_notice, started_s=tuple(started), running=running)


def read_audit(path: str | Path) -> list[AuditRecord]:
    """Every record of an audit log ([] when it does not exist); unreadable lines are skipped."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(AuditRecord(**json.loads(line)))
        except (ValueError, TypeError):
            continue
    return out


def append_audit(path: str | Path, record: AuditRecord) -> None:
    """Append one record (the folder is created when missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(record.to_json() + "\n")


def summarize(records: Sequence[AuditRecord]) -> Mapping[str, int]:
    """Count of decisions by ``action:guard`` (what `flywheel monitor decisions` totals)."""
    counts: dict[str, int] = {}
    for rec in records:
        key = f"{rec.action}:{rec.guard}"
        counts[key] = counts.get(key, 0) + 1
    return counts
