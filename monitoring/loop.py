"""The whole loop, locally and in one process (`make demo`): simulate -> batch features (online
store as of the shift) -> train and register the champion -> serve it to simulated users -> the
stream catches up on the days after the shift (the online features move) -> serve again -> drift
detected (features and served scores in the prediction log, targets in the event stream) -> alert
-> one guarded retraining -> the challenger canaried -> promoted or rolled back, with the reason.

Two clocks meet here: the simulated history carries simulated time, the live traffic (the
prediction log and the users' feedback) the wall clock. Each source is windowed on its own clock:
the event stream by the simulated days after the shift, the prediction log by the two serving
phases (the first is the scores' baseline).

Each stage is timed (wall seconds and the process's peak memory so far); every step of the story
lands on a timeline that the summary table and the HTML report (matplotlib plots embedded)
show. The stages call the library directly: no process start per command.

Stages that need code other helpers are still landing (the model server's in-process path, the
canary rollout) run when their modules import, and are reported as skipped otherwise.
"""

from __future__ import annotations

import base64
import io
import json
import math
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from flywheel.config.models import FlywheelConfig
from flywheel.monitoring.alerts import drifted_shares, firing_alerts
from flywheel.monitoring.windows import trailing_days

DAY_MS = 86_400_000


@dataclass
class StageRecord:
    """One stage of the loop."""

    name: str
    started_s: float
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    """Peak resident memory of this process (and of its finished children, max) at the stage's end."""
    status: str = "ok"
    """ok | skipped | failed."""
    detail: str = ""


@dataclass
class TimelineEvent:
    """Something that happened, for the summary and the plots."""

    at_s: float
    """Seconds since the loop started."""
    kind: str
    """stage | drift | freshness | alert | decision | retraining | canary | metric."""
    what: str
    value: float | None = None


@dataclass
class LoopResult:
    """What the loop did."""

    stages: list[StageRecord] = field(default_factory=list)
    timeline: list[TimelineEvent] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    report: str = ""

    def stage_names(self, status: str = "ok") -> list[str]:
        """Names of the stages that ended with ``status``, in order."""
        return [s.name for s in self.stages if s.status == status]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "stages": [asdict(s) for s in self.stages],
            "timeline": [asdict(e) for e in self.timeline],
            "facts": self.facts,
        }


def peak_rss_mb() -> float:
    """Peak resident memory of this process and of the largest finished child, in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def iso(ms: int) -> str:
    """ISO time (UTC) of a millisecond timestamp."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


@dataclass(frozen=True)
class LoopDays:
    """The loop's simulated days: ``warm_days`` of history the users arrive with (their features
    and the content statistics are built from them; no training example comes from them), then
    ``days`` more, tastes shifting ``shift_day`` days into those. The champion trains on the days
    from the end of the warm-up to the shift, a retraining on the last ``shift_day`` days."""

    days: int
    shift_day: float
    warm_days: int = 0

    def __post_init__(self) -> None:
        if self.warm_days < 0:
            raise ValueError(f"warm_days must be >= 0, not {self.warm_days}")
        if not 0 < self.shift_day < self.days:
            raise ValueError(f"the shift (day {self.shift_day}) must fall inside the {self.days} days")

    @property
    def simulated_days(self) -> int:
        """Days the simulator runs: the warm-up and the loop's days."""
        return self.warm_days + self.days

    @property
    def shift_at_day(self) -> float:
        """The shift, in days from the simulation's start."""
        return self.warm_days + self.shift_day

    def training_start_ms(self, start_ms: int) -> int:
        """Where the champion's training examples begin (the end of the warm-up)."""
        return start_ms + self.warm_days * DAY_MS

    def shift_ms(self, start_ms: int) -> int:
        """The simulated time of the shift (the end of the champion's training window)."""
        return start_ms + int(self.shift_at_day * DAY_MS)


class Loop:
    """Runs the stages, narrates them and keeps the record."""

    def __init__(self, config: FlywheelConfig, *, console: Console, days: LoopDays) -> None:
        self.config = config
        self.console = console
        self.days = days
        self.result = LoopResult()
        self.t0 = time.perf_counter()
        self._world: Any = None
        self._parts: Any = None
        self._errors: list[str] = []
        self._window_uri = ""
        """The labelled window (every example, Feast point-in-time features), built once for both trainings."""
        self._phases: dict[str, tuple[int, int]] = {}
        """Wall-clock span [start, end] of each serving phase (the prediction log's clock)."""

    def now(self) -> float:
        """Seconds since the loop started."""
        return time.perf_counter() - self.t0

    def note(self, kind: str, what: str, value: float | None = None) -> None:
        """Add a timeline event and narrate it."""
        self.result.timeline.append(TimelineEvent(round(self.now(), 1), kind, what, value))
        self.console.print(f"   [dim]{self.now():6.1f} s[/] {kind}: {what}", highlight=False)

    @contextmanager
    def stage(self, name: str, story: str) -> Iterator[StageRecord]:
        """Time a stage; a stage may set ``status='skipped'`` and a ``detail``."""
        record = StageRecord(name, round(self.now(), 1))
        self.console.print(f"\n[bold cyan]== {name}[/]: {story}", highlight=False)
        t = time.perf_counter()
        try:
            with self.console.status(f"{name} ..."):
                yield record
        except Exception as exc:
            record.status, record.detail = "failed", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            record.seconds = round(time.perf_counter() - t, 1)
            record.peak_rss_mb = round(peak_rss_mb(), 0)
            self.result.stages.append(record)
            mark = {"ok": "[green]ok[/]", "skipped": "[yellow]skipped[/]"}.get(record.status, "[red]failed[/]")
            self.console.print(
                f"   {mark} {name} in {record.seconds:.1f} s (peak {record.peak_rss_mb:.0f} MiB) {record.detail}",
                highlight=False,
            )
            self.note("stage", f"{name} {record.status}", record.seconds)

    # --- the stages -------------------------------------------------------------------------

    def simulate(self) -> tuple[int, int]:
        """Simulate the platform; tastes shift at ``shift_day`` (the drift the loop must catch)."""
        from flywheel.simulator.engine import simulate

        with self.stage("simulate", "a platform's traffic into the local event log; tastes shift late") as rec:
            summary = simulate(self.config)
            rec.detail = f"{summary.events_written:,} events, {summary.users:,} users, {summary.days} days"
        self.result.facts.update(start_ms=summary.start_ms, end_ms=summary.end_ms)
        return summary.start_ms, summary.end_ms

    def shift_ms(self, start_ms: int) -> int:
        """The simulated time of the shift (the end of the champion's training window)."""
        return self.days.shift_ms(start_ms)

    def features(self, start_ms: int) -> None:
        """Batch features (PySpark) into the offline store, then the online store (Feast) as of the
        shift: the champion first serves with the features of the days it was trained on."""
        from datetime import timedelta

        from flywheel.cli.features import features_config
        from flywheel.events.log import open_event_log
        from flywheel.events.validation import EventValidator, ValidationRules
        from flywheel.features.backfill import run_backfill
        from flywheel.features.freshness import newest_offline_row
        from flywheel.features.spark_job import stop_local_jvm
        from flywheel.features.store import CONTENT_VIEW, USER_VIEW, apply_repo, materialize, offline_path, open_store
        from pipelines.warm_steps import step_server

        cfg = self.config
        fcfg = features_config(cfg)
        online_until = datetime.fromtimestamp(self.shift_ms(start_ms) / 1000, UTC)
        story = "batch features (PySpark) -> Feast offline store -> online store; the labelled window, once"
        with self.stage("features", story) as rec:
            step_server()  # the pipelines' step server imports its modules while the batch job runs
            rules = ValidationRules(
                max_clock_skew_ms=int(cfg.validation.max_clock_skew_seconds * 1000),
                max_watch_seconds=cfg.validation.max_watch_seconds,
            )
            log = open_event_log(cfg.event_log)
            try:
                summary = run_backfill(fcfg, log, cfg.event_log.topics.events, EventValidator(rules=rules))
            finally:
                log.close()
            stop_local_jvm()  # the loop's only Spark job is done: free the driver JVM
            newest = max(n for v in (USER_VIEW, CONTENT_VIEW) if (n := newest_offline_row(offline_path(fcfg, v))))
            store = open_store(fcfg)
            apply_repo(store, fcfg.repo_path)
            until = min(newest + timedelta(seconds=1), online_until)
            materialize(store, until - timedelta(days=fcfg.long_window_days + 1), until)
            # both trainings cut their days from this one window (the pipeline's fetch step filters it)
            from flywheel.models.steps import feature_platform_window

            window = Path(cfg.home).resolve() / "pipelines" / "window.parquet"
            window.parent.mkdir(parents=True, exist_ok=True)
            # no example of the warm-up days is trained on: they are the users' history only
            first = pd.Timestamp(self.days.training_start_ms(start_ms), unit="ms", tz="UTC")
            info = feature_platform_window(cfg, window, start=first if self.days.warm_days else None)
            self._window_uri = str(window)
            rows = dict(summary.rows_written)
            rec.detail = (
                f"{summary.valid_events:,} valid events, rows {rows}, online as of {until:%Y-%m-%d %H:%M}, "
                f"{info['rows']:,} labelled examples"
            )

    def stream(self, end_ms: int) -> None:
        """The streaming dataflow (Bytewax) over the same events: validate, dedup, sessionize, push to Feast."""
        from flywheel.cli.stream import prepare_run, run_stream

        story = "the live path catches up (Bytewax: DLQ, dedup, sessions) and pushes the newest features to Feast"
        with self.stage("stream", story) as rec:
            streaming = prepare_run(self.config, self.config.streaming, fresh=True)
            report = run_stream(self.config, streaming, until_end=True, as_of_end_ms=end_ms + 1)
            counts = report.get("counts", report)
            rec.detail = ", ".join(f"{k} {v:,}" for k, v in counts.items() if isinstance(v, int))[:200]

    def _pipeline(self, name: str, window_start: str, window_end: str) -> dict[str, Any]:
        from monitoring.retrain import retraining_arguments
        from pipelines.local import run_local

        run_dir = Path(self.config.home).resolve() / "pipelines" / f"{name}-loop"
        run_dir.mkdir(parents=True, exist_ok=True)
        # no simulator oracle: its full-information metrics fail on a window cut before the world's end
        # (main's evaluation, 2026-12-02); the promotion gate reads the holdout metrics only
        arguments = retraining_arguments(
            self.config, window_start=window_start, window_end=window_end, oracle=False, window_uri=self._window_uri
        )

        def on_event(task: str, status: str) -> None:
            if status != "started":
                self.console.print(f"     [dim]{task}: {status}[/]", highlight=False)

        return run_local(
            name, arguments, pipeline_root=run_dir / "root", log_path=run_dir / "kfp.log", on_event=on_event
        )

    def train(self, start_ms: int) -> str:
        """Train on the days before the shift; the first model becomes the champion."""
        shift_ms = self.shift_ms(start_ms)
        warm = self.days.warm_days
        start = iso(self.days.training_start_ms(start_ms)) if warm else ""
        story = "training pipeline (kfp.local) on the days before the shift -> champion"
        with self.stage("train", story + (f" (users arrive with {warm} days of history)" if warm else "")) as rec:
            outcome = self._pipeline("training", start, iso(shift_ms))
            if outcome.get("status") != "registered":
                rec.status = "failed"
                raise RuntimeError(f"the first training did not register a champion: {outcome.get('reason', outcome)}")
            rec.detail = f"version {outcome.get('version')} -> {outcome.get('alias')}"
        self.result.facts["champion"] = str(outcome.get("version"))
        self.note("decision", f"v{outcome.get('version')} registered as {outcome.get('alias')}")
        self._note_baseline(outcome, "champion")
        return str(outcome.get("version"))

    def _note_baseline(self, outcome: dict[str, Any], which: str) -> None:
        """Narrate the promotion gate's baseline rule for ``which`` run (champion, retraining): two
        stages vs popularity, NDCG@10 (the gate's view)."""
        from flywheel.evaluation.gate import popularity_baseline
        from flywheel.registry.mlflow_registry import run_metrics

        if not outcome.get("run_id"):
            return
        training = self.config.training
        names = [f"{view}{system}.ndcg@10" for view in ("", "catalog.") for system in ("two_stage", "popularity")]
        names.append("view.logged")
        _, ours, pop = popularity_baseline(run_metrics(training.tracking_uri, str(outcome["run_id"]), names))
        if math.isnan(ours) or not pop > 0:  # missing, or a popularity of 0
            return
        ratio = ours / pop
        gate = training.promotion.min_ndcg_vs_popularity
        self.result.facts.setdefault("ndcg_vs_popularity", {})[which] = ratio
        detail = f"{which}: two stages {ratio:.3f}x popularity, NDCG@10 {ours:.4f} vs {pop:.4f} (gate {gate}x)"
        self.note("metric", detail, ratio)

    def _traffic(self, parts: Any, requests: int, *, seed: int) -> Any:
        """Simulated users call the router in real time (the prediction log stamps the wall clock); their
        tastes are the drifted ones (the world's shift applies from ``shift_day``)."""
        from flywheel.events.log import open_event_log
        from flywheel.serving.prediction_log import new_request_id
        from flywheel.serving.protocol import RecommendRequest
        from flywheel.simulator.traffic import Served, SimulatedUsers
        from flywheel.simulator.world import build_world

        model_name = self.config.training.model_name

        def recommend(user_id: str, k: int) -> Served:
            request_id = new_request_id()
            try:
                answer = parts.router.answer(RecommendRequest(user_id, k), request_id)
            except Exception as exc:
                self._errors.append(f"{type(exc).__name__}: {exc}")
                raise
            rec = answer.recommendation
            return Served(
                request_id, rec.items, rec.scores, answer.variant, model_name, answer.model_version, answer.rollout_id
            )

        if self._world is None:
            self._world = build_world(self.config.simulator)
        log = open_event_log(self.config.event_log)
        try:
            producer = log.producer(self.config.event_log.topics.events)
            written = parts.writer.written if parts.writer is not None else 0
            users = SimulatedUsers(self._world, seed=seed, realtime=True)
            summary = users.run(recommend, producer, requests=requests)
            summary.events_written += users.drain(producer)
            producer.flush()
        finally:
            log.close()
        if parts.writer is not None:  # the analysis reads the prediction log: wait for the writer's flush
            deadline = time.monotonic() + 60
            while parts.writer.written < written + summary.requests and time.monotonic() < deadline:
                time.sleep(0.05)
        return summary

    def server(self) -> Any:
        """The model server's parts, built once (one writer holds the prediction log's topic)."""
        if self._parts is None:
            from serving.server import build_server

            self._parts = build_server(self.config)
        return self._parts

    def close(self) -> None:
        """Stop the model server's parts (drains the prediction log)."""
        if self._parts is not None:
            self._parts.close()
            self._parts = None

    def serve(self, requests: int, *, phase: str) -> None:
        """The champion (KServe model's router, in-process) answers simulated users whose tastes moved;
        ``phase`` is ``before`` (online features as of the shift) or ``after`` (the stream caught up)."""
        story = {
            "before": "the champion answers simulated users in-process with the features it was trained on",
            "after": "the champion answers the same users with the features of the days after the shift",
        }[phase]
        with self.stage(f"serve-{phase}", story) as rec:
            try:
                import serving.server  # noqa: F401 - availability check
            except ImportError:
                rec.status, rec.detail = "skipped", "the model server is not on this branch"
                return
            # the server reads the online store on every request: the "after" phase sees what the stream pushed
            summary = self._traffic(self.server(), requests, seed=1 if phase == "before" else 2)
            self._phases[phase] = (summary.start_ms, summary.end_ms)
            rec.detail = f"{summary.requests} requests, CTR {summary.ctr:.4f} ({dict(summary.by_variant)})"
            if summary.failed:
                rec.status = "ok" if summary.requests else "failed"
                rec.detail += f"; {summary.failed} failed, first: {self._errors[0][:200]}"
        self.note("metric", f"online ctr champion v{self.result.facts.get('champion')} ({phase})", summary.ctr)
        self.result.facts.setdefault("serving", {})[phase] = {"ctr": summary.ctr, "requests": summary.requests}
        if phase == "after":  # the champion's online metrics before the retraining (the canary's are "online_after")
            self.result.facts["online_before"] = {"ctr": summary.ctr, "requests": summary.requests}

    def detect(self, start_ms: int, end_ms: int) -> dict[str, Any]:
        """The drift job against the champion's training reference, each source on its own clock: the
        event stream over the simulated days after the shift; the prediction log over the second
        serving phase, its scores against the first phase's."""
        from monitoring.drift_job import champion_reference, run_drift

        events_window = f"{iso(self.shift_ms(start_ms))}/{iso(end_ms + 1)}"
        spans = {phase: f"{iso(a)}/{iso(b + 1)}" for phase, (a, b) in self._phases.items()}
        with self.stage("detect", "drift, targets and data quality after the shift vs the champion's window") as rec:
            catalog_path = Path(self.config.simulator.ground_truth_dir) / "catalog.parquet"
            catalog = pd.read_parquet(catalog_path) if catalog_path.exists() else None
            run = run_drift(
                self.config,
                window_spec=events_window,
                prediction_window=spans.get("after", events_window),
                prediction_baseline=spans.get("before"),
                reference=champion_reference(self.config),
                catalog=catalog,
            )
            found: dict[str, Any] = {}
            for res in run.results:
                found[res.source] = res.to_dict()
                self.note("drift", f"{res.source}: {res.status} - {res.features.detail}", res.features.share)
                if res.scores is not None:
                    self.note("drift", f"served scores: {res.scores.status} - {res.scores.detail}", res.scores.psi)
                for target in res.targets:
                    self.note("drift", target.detail, target.relative_change)
                for variant, ctr in res.online_ctr.items():
                    self.note("metric", f"ctr {variant} (after the shift)", ctr)
            for view in run.freshness:
                age = "no rows" if view.age_seconds is None else f"newest row {view.age_seconds / 3600:,.1f} h old"
                self.note("freshness", f"{view.view}: {age}", view.age_seconds)
            rec.detail = "; ".join(f"{r.source} {r.status}" for r in run.results)
        self.result.facts["drift"] = found
        return found

    def alert_and_retrain(self, drift: dict[str, Any], start_ms: int, end_ms: int) -> dict[str, Any]:
        """The drift alert goes to the retrain trigger (in-process path); its guards let one retraining start."""
        from flywheel.monitoring.trigger import TriggerRules, read_audit
        from monitoring.retrain import LocalRunner
        from monitoring.trigger_service import RetrainTrigger

        cfg = self.config.monitoring
        shares = drifted_shares(list(drift.values()))
        firing = firing_alerts(list(drift.values()), max_drift_share=cfg.drift.max_drift_share)
        audit = cfg.trigger.audit_path or Path(self.config.home) / "monitoring" / "decisions.jsonl"
        with self.stage(
            "retrain", "alert -> retrain trigger (debounce, single-flight, cooldown, budget) -> pipeline"
        ) as rec:
            if not firing:
                rec.status, rec.detail = "skipped", f"no alert: drifted shares {shares}, no target or score drift"
                return {}
            alerts = [
                {
                    "status": "firing",
                    "labels": {"alertname": a.name, "key": a.key, "severity": "warning", "retrain": "true"},
                    "annotations": {"summary": a.summary},
                    "startsAt": datetime.now(UTC).isoformat(),
                }
                for a in firing
            ]
            body = json.dumps({"version": "4", "status": "firing", "receiver": "retrain-trigger", "alerts": alerts})
            self.note("alert", f"firing: {', '.join(a.key for a in firing)}")
            # retrain on the latest days, the shift included (the gate warns about the drift, does not block)
            window_start = iso(trailing_days(end_ms, self.days.shift_day).start_ms)
            trigger = RetrainTrigger(
                rules=TriggerRules(
                    cfg.trigger.alerts,
                    cfg.trigger.debounce_seconds,
                    cfg.trigger.cooldown_seconds,
                    cfg.trigger.max_runs_per_day,
                ),
                audit_path=audit,
                runner=LocalRunner(
                    self.config,
                    window_start=window_start,
                    window_end=iso(end_ms + 1),  # the freshness check's reference: the newest simulated event
                    oracle=False,
                    window_uri=self._window_uri,
                ),
                retry_attempts=cfg.trigger.retry_attempts,
                retry_backoff_seconds=cfg.trigger.retry_backoff_seconds,
            )
            _, first = trigger.handle(body.encode())
            self.note("decision", f"trigger: {first['action']} ({first['guard']}): {first['reason']}")
            _, again = trigger.handle(body.encode())  # Alertmanager repeats itself; the guards hold
            self.note("decision", f"trigger again: {again['action']} ({again['guard']}): {again['reason']}")
            trigger.wait()
            finished = [r for r in read_audit(audit) if r.action == "finish" and r.run_id == first.get("run_id")]
            outcome = finished[-1].outcome if finished else {}
            self.note("retraining", f"{outcome.get('status')}: {outcome.get('reason') or outcome.get('version', '')}")
            rec.detail = f"run {first.get('run_id')}: {outcome.get('status')}"
        self._note_baseline(outcome, "retraining")
        self.result.facts["retraining"] = {k: v for k, v in outcome.items() if k != "log"}
        self.result.facts["decisions"] = [asdict(r) for r in read_audit(audit)]
        return outcome

    def canary(self, outcome: dict[str, Any], requests: int, max_rounds: int = 6) -> None:
        """The challenger is canaried by the rollout code (registry tags read by the model server's
        watcher, the automatic analysis on the prediction log and the feedback): rounds of traffic
        and analysis until it is promoted or rolled back; still undecided after ``max_rounds``, it is
        rolled back with that reason (the champion stays)."""
        from flywheel.registry.mlflow_registry import CHAMPION, aliases

        model = self.config.training.model_name
        with self.stage("canary", "the challenger takes a growing share of users; promote or roll back") as rec:
            if outcome.get("status") != "registered":
                reason = outcome.get("reason", "no retraining")
                champion = aliases(model).get(CHAMPION)
                self.result.facts["champion_after"] = champion
                if champion != self.result.facts.get("champion"):  # a model that lost must leave the champion alone
                    raise RuntimeError(f"the champion moved to v{champion} without a challenger winning")
                rec.detail = f"no challenger ({reason}); champion v{champion} kept"
                self.note("decision", rec.detail)
                self.result.facts["decision"] = {"action": "kept", "reason": rec.detail}
                return
            try:
                from flywheel.events.log import open_event_log
                from flywheel.serving.rollout import RolloutDecision
                from flywheel.serving.rollout_registry import analyze_rollout, apply_decision, start_rollout
                from flywheel.serving.rollout_registry import audit_path as rollout_audit
            except ImportError:
                rec.status, rec.detail = "skipped", "the serving and rollout code is not on this branch"
                return
            audit = rollout_audit(self.config)
            state = start_rollout(model, self.config.rollout, audit)
            self.note("canary", f"{state.rollout_id}: v{state.canary_version} at {state.fraction:.0%}", state.fraction)
            step = None
            for round_ in range(max_rounds):
                parts = self.server()
                if parts.watcher is not None:
                    parts.watcher.poll()  # the registry moved: load the canary at the stage's fraction now
                summary = self._traffic(parts, requests, seed=10 + round_)
                log = open_event_log(self.config.event_log)
                try:
                    step = analyze_rollout(self.config, log)
                finally:
                    log.close()
                if step.evidence is not None:
                    for variant, ev in step.evidence.variants.items():
                        self.note("metric", f"online ctr {variant} (round {round_ + 1})", ev.ctr)
                decided = f"{step.decision.decision}: {step.decision.reason}"
                self.note("canary", f"round {round_ + 1} ({dict(summary.by_variant)}): {decided}", step.after.fraction)
                if step.after.status != "running":
                    break
            assert step is not None
            final = step.after
            if final.status == "running":
                reason = f"no decision after {max_rounds} rounds ({step.decision.reason}): the champion stays"
                final = apply_decision(
                    model, final, RolloutDecision("rollback", reason, final.stage, 0.0), audit, actor="loop"
                )
            action = {"promoted": "promoted", "rolled_back": "rolled back"}.get(final.status, final.status)
            last = step.decision.reason if step.after.status != "running" else reason
            rec.detail = f"v{final.canary_version} {action}: {last}"
            self.note("decision", rec.detail)
            ctr = {v: e.ctr for v, e in step.evidence.variants.items()} if step.evidence is not None else {}
            self.result.facts["decision"] = {"action": action, "reason": last, "ctr": ctr}
            self.result.facts["online_after"] = ctr
            self.result.facts["champion_after"] = aliases(model).get(CHAMPION)

    # --- the record ---------------------------------------------------------------------------

    def summary(self) -> Table:
        """The table of stages and what happened when."""
        table = Table(title="the loop: what happened when")
        for col in ("at (s)", "stage / event", "took (s)", "peak MiB", "what"):
            table.add_column(col, overflow="fold")
        for event in self.result.timeline:
            if event.kind == "stage":
                stage = next(s for s in self.result.stages if f"{s.name} {s.status}" == event.what)
                table.add_row(
                    f"{stage.started_s:.0f}",
                    f"[bold]{stage.name}[/]",
                    f"{stage.seconds:.1f}",
                    f"{stage.peak_rss_mb:.0f}",
                    f"{stage.status} {stage.detail}",
                )
            else:
                table.add_row(f"{event.at_s:.0f}", event.kind, "", "", event.what)
        total = sum(s.seconds for s in self.result.stages)
        table.add_row("", "[bold]total[/]", f"{total:.1f}", f"{peak_rss_mb():.0f}", "")
        return table


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def write_report(result: LoopResult, folder: Path) -> Path:
    """An HTML page (plots embedded as PNG) and the JSON record of the loop."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "loop.json").write_text(json.dumps(result.to_dict(), indent=2, default=str), encoding="utf-8")
    plots = []
    fig, ax = plt.subplots(figsize=(9, 2.8))
    for i, stage in enumerate(result.stages):
        color = {"ok": "tab:green", "skipped": "tab:gray"}.get(stage.status, "tab:red")
        ax.barh(i, max(stage.seconds, 0.5), left=stage.started_s, color=color)
    ax.set_yticks(range(len(result.stages)), [s.name for s in result.stages])
    ax.invert_yaxis()
    for event in result.timeline:
        if event.kind in ("alert", "retraining", "canary"):
            ax.axvline(event.at_s, color="tab:red" if event.kind == "alert" else "tab:blue", ls="--", lw=1)
    ax.set_xlabel("seconds since the loop started")
    ax.set_title("stages (green ok, grey skipped); dashed: alert (red), retraining / canary (blue)")
    plots.append(("Timeline", _png(fig)))
    plt.close(fig)
    drift = result.facts.get("drift", {})
    if drift:
        fig, ax = plt.subplots(figsize=(9, 3))
        psis = [(f"{src}:{c['column']}", c["psi"]) for src, d in drift.items() for c in d["features"]["columns"]]
        ax.bar([p[0] for p in psis], [p[1] for p in psis], color="tab:orange")
        ax.axhline(0.2, color="black", ls=":", lw=1)
        ax.set_ylabel("PSI vs the champion's window")
        ax.set_title("feature drift after the shift (dotted: a column drifts)")
        ax.tick_params(axis="x", rotation=45)
        plots.append(("Drift", _png(fig)))
        plt.close(fig)
    ctr = [(e.what, e.value) for e in result.timeline if e.kind == "metric" and e.value is not None]
    if ctr:
        fig, ax = plt.subplots(figsize=(6, 2.5))
        ax.bar([c[0] for c in ctr], [c[1] for c in ctr], color="tab:purple")
        ax.set_ylabel("clicks per impression")
        ax.set_title("online CTR (served traffic)")
        ax.tick_params(axis="x", rotation=20)
        plots.append(("CTR per variant", _png(fig)))
        plt.close(fig)
    rows = "".join(
        f"<tr><td>{s.started_s:.0f}</td><td>{s.name}</td><td>{s.status}</td><td>{s.seconds:.1f}</td>"
        f"<td>{s.peak_rss_mb:.0f}</td><td>{s.detail}</td></tr>"
        for s in result.stages
    )
    events = "".join(f"<tr><td>{e.at_s:.0f}</td><td>{e.kind}</td><td>{e.what}</td></tr>" for e in result.timeline)
    images = "".join(f"<h2>{title}</h2><img src='data:image/png;base64,{data}'/>" for title, data in plots)
    html = f"""<!doctype html><html><head><meta charset="utf-8"><title>Flywheel loop</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}</style></head>
<body><h1>Flywheel: the closed loop</h1>{images}
<h2>Stages</h2><table><tr><th>at (s)</th><th>stage</th><th>status</th><th>seconds</th><th>peak MiB</th>
<th>detail</th></tr>{rows}</table>
<h2>What happened when</h2><table><tr><th>at (s)</th><th>kind</th><th>what</th></tr>{events}</table>
</body></html>"""
    path = folder / "loop.html"
    path.write_text(html, encoding="utf-8")
    return path


def run_loop(
    config: FlywheelConfig, *, console: Console, shift_day: float, requests: int = 1000, warm_days: int = 0
) -> LoopResult:
    """Run every stage in order; the record is kept even when a stage fails.

    ``config.simulator.days`` holds the ``warm_days`` (see :class:`LoopDays`); ``shift_day``
    counts from the end of the warm-up.
    """
    days = LoopDays(days=config.simulator.days - warm_days, shift_day=shift_day, warm_days=warm_days)
    loop = Loop(config, console=console, days=days)
    try:
        start_ms, end_ms = loop.simulate()
        loop.features(start_ms)
        loop.train(start_ms)
        loop.serve(requests // 2, phase="before")
        loop.stream(end_ms)
        loop.serve(requests - requests // 2, phase="after")
        drift = loop.detect(start_ms, end_ms)
        outcome = loop.alert_and_retrain(drift, start_ms, end_ms)
        loop.canary(outcome, requests)
    finally:
        loop.close()
        console.print(loop.summary())
        report = write_report(loop.result, Path(config.home) / "reports" / "loop")
        loop.result.report = str(report)
        console.print(f"report: {report}")
    return loop.result
