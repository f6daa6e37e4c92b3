"""The live rollout in the MLflow registry, the decision audit, and one analysis step end to end.

The registry is the one source of truth for the model server and for ``flywheel rollout``: the
rollout lives in registered-model tags (``rollout.id``, ``rollout.fraction``, ``rollout.stage``,
``rollout.status`` of the contract, plus ``rollout.stage_started_ms`` and the two versions), and
the models in the aliases ``champion``, ``challenger`` and ``previous_champion``. Every decision,
automatic or manual, is appended with its evidence to a JSONL audit file.

Call :func:`flywheel.registry.mlflow_registry.connect` first (entry points do).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.registry.mlflow_registry import CHALLENGER, CHAMPION, aliases, promote, rollback, version_by_alias
from flywheel.serving.attribution import prediction_frame
from flywheel.serving.rollout import (
    Evidence,
    RolloutDecision,
    RolloutRecord,
    decide,
    evidence_record,
    gather_evidence,
)
from flywheel.serving.routing import TAG_FRACTION, TAG_ID, TAG_STAGE, TAG_STATUS, rollout_from_tags

if TYPE_CHECKING:
    from flywheel.config.models import FlywheelConfig
    from flywheel.config.rollout import RolloutConfig
    from flywheel.events.log import EventLog

TAG_STAGE_STARTED = "rollout.stage_started_ms"
TAG_CHAMPION = "rollout.champion_version"
TAG_CANARY = "rollout.canary_version"


class RolloutError(RuntimeError):
    """A rollout command cannot be carried out (the message says why)."""


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds."""
    return int(time.time() * 1000)


def _client() -> Any:
    from mlflow import MlflowClient

    return MlflowClient()


def read_state(model_name: str) -> RolloutRecord:
    """The rollout recorded on ``model_name`` (status ``none`` when there has been none)."""
    from mlflow.exceptions import MlflowException

    try:
        tags = dict(_client().get_registered_model(model_name).tags or {})
    except MlflowException:
        tags = {}
    contract = rollout_from_tags(tags)  # the server's parser: malformed tags mean no rollout
    try:
        started = int(tags.get(TAG_STAGE_STARTED, 0))
    except ValueError:
        started = 0
    return RolloutRecord(
        rollout_id=contract.rollout_id,
        status=contract.status,
        stage=contract.stage,
        fraction=contract.fraction,
        stage_started_ms=started,
        champion_version=tags.get(TAG_CHAMPION) or None,
        canary_version=tags.get(TAG_CANARY) or None,
    )


def state_tags(state: RolloutRecord) -> list[tuple[str, str]]:
    """The tags of ``state`` in the order :func:`write_state` writes them.

    MLflow sets one tag at a time and the servers poll between any two, so the order keeps every
    state they can read in between harmless: a rollout that starts (status ``running``) writes its
    status last, once its id and fraction are in place; any other state writes its status first,
    so a rollout that ends stops routing to the canary before anything else changes. A server in
    between routes as before the write (or, past the status, as after it), never by a mix such as
    a new status under the old id.
    """
    status = (TAG_STATUS, state.status)
    rest = [
        (TAG_ID, state.rollout_id or ""),
        (TAG_FRACTION, repr(float(state.fraction))),
        (TAG_STAGE, str(state.stage)),
        (TAG_STAGE_STARTED, str(state.stage_started_ms)),
        (TAG_CHAMPION, state.champion_version or ""),
        (TAG_CANARY, state.canary_version or ""),
    ]
    return [*rest, status] if state.status == "running" else [status, *rest]


def write_state(model_name: str, state: RolloutRecord) -> None:
    """Record ``state`` in the registered-model tags (the servers poll them), in :func:`state_tags`' order."""
    client = _client()
    for key, value in state_tags(state):
        client.set_registered_model_tag(model_name, key, value)


# --- audit ---------------------------------------------------------------------------------------


def audit_path(config: FlywheelConfig) -> Path:
    """The audit file: ``rollout.audit_path`` or ``<home>/rollout/decisions.jsonl``."""
    return config.rollout.audit_path or Path(config.home) / "rollout" / "decisions.jsonl"


def append_audit(path: Path, record: dict[str, Any]) -> None:
    """Append one decision record as a JSON line (the file is only ever appended to)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(record, sort_keys=True, allow_nan=False) + "\n")


def read_audit(path: Path, rollout_id: str | None = None) -> Iterator[dict[str, Any]]:
    """The audit records in order (only those of ``rollout_id`` when given); damaged lines are skipped."""
    if not path.is_file():
        return
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and (rollout_id is None or record.get("rollout_id") == rollout_id):
                yield record


def _record(
    model_name: str,
    decision: str,
    reason: str,
    before: RolloutRecord,
    after: RolloutRecord,
    *,
    actor: str,
    at_ms: int,
    evidence: Evidence | None = None,
) -> dict[str, Any]:
    return {
        "time_ms": at_ms,
        "time": datetime.fromtimestamp(at_ms / 1000, tz=UTC).isoformat(),
        "model_name": model_name,
        "rollout_id": after.rollout_id,
        "decision": decision,
        "reason": reason,
        "actor": actor,
        "champion_version": after.champion_version,
        "canary_version": after.canary_version,
        "before": {"status": before.status, "stage": before.stage, "fraction": before.fraction},
        "after": {"status": after.status, "stage": after.stage, "fraction": after.fraction},
        "evidence": evidence_record(evidence) if evidence is not None else None,
    }


# --- commands ------------------------------------------------------------------------------------


def start_rollout(
    model_name: str,
    config: RolloutConfig,
    audit: Path,
    *,
    rollout_id: str | None = None,
    at_ms: int | None = None,
) -> RolloutRecord:
    """Start canarying the ``challenger`` against the ``champion`` at the first stage.

    The rollout id salts the canary assignment; a new one (time + random suffix) is made when None.

    Raises:
        RolloutError: A rollout is already running, or an alias is missing.
    """
    at = now_ms() if at_ms is None else at_ms
    before = read_state(model_name)
    if before.status == "running":
        raise RolloutError(f"rollout {before.rollout_id} is still running: promote or roll it back first")
    champion = version_by_alias(model_name, CHAMPION)
    challenger = version_by_alias(model_name, CHALLENGER)
    if champion is None or challenger is None:
        missing = [a for a, v in ((CHAMPION, champion), (CHALLENGER, challenger)) if v is None]
        raise RolloutError(f"model {model_name!r} has no {' and no '.join(missing)} alias: nothing to canary")
    stamp = datetime.fromtimestamp(at / 1000, tz=UTC).strftime("%Y%m%dT%H%M%S")
    state = RolloutRecord(
        rollout_id=rollout_id or f"rollout-{stamp}-{uuid.uuid4().hex[:6]}",
        status="running",
        stage=0,
        fraction=config.schedule[0],
        stage_started_ms=at,
        champion_version=champion.version,
        canary_version=challenger.version,
    )
    write_state(model_name, state)
    reason = f"canary version {challenger.version} against champion {champion.version} at {config.schedule[0]:g}"
    append_audit(audit, _record(model_name, "start", reason, before, state, actor="manual", at_ms=at))
    return state


def apply_decision(
    model_name: str,
    state: RolloutRecord,
    decision: RolloutDecision,
    audit: Path,
    *,
    evidence: Evidence | None = None,
    actor: str = "auto",
    at_ms: int | None = None,
) -> RolloutRecord:
    """Carry out a decision in the registry and append it to the audit; return the new state.

    ``raise`` moves the stage and fraction; ``promote`` makes the canary the champion (the old one
    stays as ``previous_champion``); ``rollback`` ends a running canary (the version is tagged
    ``rolled_back`` and loses the ``challenger`` alias), or after a promotion gives the champion
    alias back to the ``previous_champion``; ``hold`` changes nothing but is recorded.
    """
    at = now_ms() if at_ms is None else at_ms
    after = state
    if decision.decision == "raise":
        after = replace(state, stage=decision.stage, fraction=decision.fraction, stage_started_ms=at)
    elif decision.decision == "promote":
        if state.canary_version is None:
            raise RolloutError("the rollout records no canary version to promote")
        promote(model_name, state.canary_version)
        after = replace(state, status="promoted", fraction=0.0, stage_started_ms=at)
    elif decision.decision == "rollback" and state.status == "promoted":
        rollback(model_name, decision.reason)  # the champion goes back to the previous champion
        after = replace(state, status="rolled_back", fraction=0.0, stage_started_ms=at)
    elif decision.decision == "rollback":
        client = _client()
        if state.canary_version:
            client.set_model_version_tag(model_name, state.canary_version, "rolled_back", decision.reason[:500])
            if aliases(model_name).get(CHALLENGER) == state.canary_version:
                client.delete_registered_model_alias(model_name, CHALLENGER)
        after = replace(state, status="rolled_back", fraction=0.0, stage_started_ms=at)
    if after != state:
        write_state(model_name, after)
    record = _record(
        model_name, decision.decision, decision.reason, state, after, actor=actor, at_ms=at, evidence=evidence
    )
    append_audit(audit, record)
    return after


@dataclass(frozen=True)
class AnalysisStep:
    """One analysis: the state before, the evidence, the decision and the state after."""

    before: RolloutRecord
    evidence: Evidence | None
    decision: RolloutDecision
    after: RolloutRecord


def analyze_rollout(
    config: FlywheelConfig, log: EventLog, *, apply: bool = True, at_ms: int | None = None
) -> AnalysisStep:
    """Analyse the running rollout once on the logs and (unless ``apply`` is False) carry out the decision.

    Raises:
        RolloutError: No rollout is running.
    """
    from flywheel.events.local_log import LogError
    from flywheel.experiments.metrics import events_frame
    from flywheel.experiments.source import read_events, read_values

    model_name = config.training.model_name
    state = read_state(model_name)
    if state.status != "running" or state.rollout_id is None:
        raise RolloutError(f"no rollout is running on {model_name!r} (status {state.status}): start one first")
    topics = config.event_log.topics
    try:
        predictions = prediction_frame([value for value, _ in read_values(log, topics.predictions)])
    except LogError:  # no prediction has been logged yet: the topic does not exist
        predictions = prediction_frame([])
    try:
        events = read_events(log, topics.events)
    except LogError:
        events = events_frame([])
    evidence = gather_evidence(predictions, events, state, config.rollout)
    decision = decide(evidence, state, config.rollout)
    after = state
    if apply:
        after = apply_decision(model_name, state, decision, audit_path(config), evidence=evidence, at_ms=at_ms)
    return AnalysisStep(state, evidence, decision, after)
