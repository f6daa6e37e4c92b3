"""Simulated users calling a live recommender and answering with feedback events.

Where :mod:`flywheel.simulator.engine` replays a whole platform with its own logging policy,
this module puts the same simulated users in front of *any* recommender: a callable
``recommend(user_id, k) -> Served`` (a model in-process, or the model server over HTTP with
:func:`http_recommender`). Each request draws a user (weighted by activity, bots left out),
asks for ``k`` titles and writes what the user does as ordinary schema-v2 events on the
``events`` topic:

- an ``impression`` per served title (``context.position`` = rank, ``context.algorithm`` =
  ``"<model name>:<version>"``, ``context.experiment_id`` = the rollout id,
  ``context.variant`` = the variant that answered);
- clicks from the simulator's own position-based response model
  (:func:`~flywheel.simulator.sessions.examination_probability` x
  :func:`~flywheel.simulator.sessions.click_probability` with the true affinity of the
  ground truth), then ``playback.started`` and ``playback.stopped`` / ``playback.completed``
  with the watch time drawn as the simulator draws it.

The recommender never sees the ground truth: a better model earns more clicks and watch time
only by ranking titles the users truly like. Deterministic given the seed and the answers.
A :class:`TasteShift` moves a share of the users' tastes toward some genres from a given time
on (the drift scenario of the monitoring demo).
"""

from __future__ import annotations

import heapq
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from flywheel.events.encoding import SCHEMA_VERSION, hex_ids
from flywheel.events.log import Message, Producer
from flywheel.simulator.ground_truth import WATCH_CONCENTRATION, watch_mean
from flywheel.simulator.population import drifted_tastes
from flywheel.simulator.sessions import COMPLETION_FRACTION, click_probability, examination_probability
from flywheel.simulator.world import UINT64_MAX, World

SOURCE = "simulator.traffic"
"""``source`` of the events this module writes."""


@dataclass(frozen=True, slots=True)
class Served:
    """What a recommender answered to one request."""

    request_id: str
    items: Sequence[str]
    """Content ids, best first."""
    scores: Sequence[float]
    variant: str
    """``champion``, ``canary`` (or any name the router gives)."""
    model_name: str
    model_version: str
    rollout_id: str | None = None


Recommend = Callable[[str, int], Served]
"""``recommend(user_id, k)``: the recommender under test (raise to report a failed request)."""


@dataclass(frozen=True, kw_only=True)
class TasteShift:
    """A drift scenario: from ``at_ms`` on, a share of the users' tastes moves toward some genres."""

    toward: Mapping[str, float]
    """Genre -> weight of the direction the tastes move in."""
    users_fraction: float = 0.5
    """Share of the users whose taste moves."""
    strength: float = 1.0
    """How far they move (the scale of the simulator's ``taste_drift.strength``)."""
    at_ms: int | None = None
    """When the shift starts (None: from the first request)."""


@dataclass
class TrafficSummary:
    """What a run of simulated traffic did."""

    requests: int = 0
    failed: int = 0
    """Requests whose ``recommend`` raised (no feedback written)."""
    last_error: str | None = None
    """The message of the latest failed request."""
    impressions: int = 0
    clicks: int = 0
    playbacks: int = 0
    watch_seconds: float = 0.0
    events_written: int = 0
    by_variant: Counter[str] = field(default_factory=Counter)
    """Answered requests per variant."""
    start_ms: int = 0
    end_ms: int = 0

    @property
    def ctr(self) -> float:
        """Clicks per impression over the run."""
        return self.clicks / self.impressions if self.impressions else 0.0


class SimulatedUsers:
    """The simulator's users as clients of a recommender.

    Args:
        world: The simulated world (catalog, population, tastes) from
            :func:`flywheel.simulator.world.build_world`.
        seed: Seed of the user draws and of the responses.
        start_ms: Time of the first request (default: the end of the world's simulated days).
        mean_gap_ms: Mean time between two requests on the simulated clock (exponential gaps).
        realtime: Use the wall clock instead of the simulated one; feedback is then written when
            it is due (:meth:`drain` writes what is still pending).
        taste_shift: An optional drift scenario.
    """

    def __init__(
        self,
        world: World,
        *,
        seed: int = 0,
        start_ms: int | None = None,
        mean_gap_ms: float = 1000.0,
        realtime: bool = False,
        taste_shift: TasteShift | None = None,
    ) -> None:
        self.world = world
        cfg = world.cfg
        self.rng = np.random.default_rng([seed, 11])
        self.realtime = realtime
        self.mean_gap_ms = mean_gap_ms
        self._now = int(time.time() * 1000) if realtime else int(world.end_ms if start_ms is None else start_ms)
        pop = world.population
        humans = np.flatnonzero(~pop.is_bot & (pop.signup_ms <= self._now))
        if humans.size == 0:
            raise ValueError("the world has no human user signed up before the traffic starts")
        self._users = humans
        self._user_cdf = np.cumsum(pop.activity[humans]) / pop.activity[humans].sum()
        self._content = {c: i for i, c in enumerate(world.catalog.content_ids)}
        self.shift = taste_shift
        self._shift_delta = np.zeros_like(pop.taste)
        if taste_shift is not None:
            moved, _ = drifted_tastes(
                np.random.default_rng([seed, 12]),
                pop.taste,
                world.directions,
                users_fraction=taste_shift.users_fraction,
                toward=taste_shift.toward,
                strength=taste_shift.strength,
                taste_scale=pop.taste_scale,
            )
            self._shift_delta = moved - pop.taste
            self._shift_delta[pop.is_bot] = 0.0
        self._shift_at = self._now if taste_shift is None or taste_shift.at_ms is None else taste_shift.at_ms
        self._pending: list[tuple[int, int, Message]] = []
        self._sequence = 0
        self.row_decay, self.position_bias = cfg.row_decay, cfg.position_bias
        self.max_click, self.play_after_click = cfg.max_click_probability, cfg.play_after_click

    @property
    def now_ms(self) -> int:
        """The traffic's clock: the time of the current (or next) request."""
        return int(time.time() * 1000) if self.realtime else self._now

    def taste(self, user: int, at_ms: int) -> np.ndarray:
        """The taste of user number ``user`` at ``at_ms`` (world drift and taste shift applied)."""
        world = self.world
        drifted = world.drift_at_ms is not None and at_ms >= world.drift_at_ms
        base = world.taste_drifted[user] if drifted else world.population.taste[user]
        return base + self._shift_delta[user] if self.shift is not None and at_ms >= self._shift_at else base

    def affinity(self, user: int, items: Sequence[str], at_ms: int) -> np.ndarray:
        """True affinity of the user for each title (0 for ids the catalog does not know)."""
        index = np.array([self._content.get(str(c), -1) for c in items], dtype=np.int64)
        known = index >= 0
        out = np.zeros(len(index))
        if known.any():
            cat = self.world.catalog
            logit = cat.vectors[index[known]] @ self.taste(user, at_ms) + cat.bias[index[known]]
            out[known] = 1.0 / (1.0 + np.exp(-logit))
        return out

    def draw_user(self) -> int:
        """A user number, drawn in proportion to activity."""
        pick = int(np.searchsorted(self._user_cdf, self.rng.random(), side="right"))
        return int(self._users[min(pick, len(self._users) - 1)])

    def respond(self, user: int, served: Served, at_ms: int) -> tuple[list[Message], dict[str, float]]:
        """The feedback events of ``user`` to an answer served at ``at_ms``, and their counts."""
        world, rng = self.world, self.rng
        pop = world.population
        owned = int(pop.device_offsets[user + 1] - pop.device_offsets[user])
        device = world.vocabulary.devices[int(pop.device_list[pop.device_offsets[user] + int(rng.integers(owned))])]
        session_id = f"s{int(rng.integers(0, UINT64_MAX, dtype=np.uint64, endpoint=True)):016x}"
        items = [str(c) for c in served.items]
        n = len(items)
        position = np.arange(n)
        aff = self.affinity(user, items, at_ms)
        exam = examination_probability(0, position, row_decay=self.row_decay, position_bias=self.position_bias)
        clicked = rng.random(n) < np.clip(click_probability(exam, aff, max_click_probability=self.max_click), 0, 1)
        plays = rng.random(n) < self.play_after_click
        mean = watch_mean(aff)
        fraction = rng.beta(WATCH_CONCENTRATION * mean, WATCH_CONCENTRATION * (1 - mean))
        completed = fraction >= COMPLETION_FRACTION
        fraction = np.where(completed, 1.0, fraction)
        cat = world.catalog
        duration = np.array([float(cat.duration_s[self._content[c]]) if c in self._content else 0.0 for c in items])
        watch = np.round(fraction * duration, 1)
        ids = iter(hex_ids(*rng.integers(0, UINT64_MAX, (2, 4 * n), dtype=np.uint64, endpoint=True)))
        user_id = pop.user_ids[user]
        context = {
            "page": "home",
            "row": 0,
            "algorithm": f"{served.model_name}:{served.model_version}",
            "experiment_id": served.rollout_id,
            "variant": served.variant,
            "propensity": None,
        }

        def event(kind: str, ts: int, item: str, pos: int, **payload: Any) -> Message:
            body = {
                "event_id": next(ids),
                "event_type": kind,
                "schema_version": SCHEMA_VERSION,
                "timestamp_ms": ts,
                "user_id": user_id,
                "session_id": session_id,
                "content_id": item,
                "device": device,
                "context": {**context, "position": pos},
                "watch_seconds": payload.get("watch"),
                "position_seconds": payload.get("head"),
                "query": None,
                "duration_seconds": payload.get("duration"),
                "rating": None,
                "source": SOURCE,
            }
            return (user_id, orjson.dumps(body), ts)

        messages = [event("impression", at_ms + 50 * p, items[p], p) for p in range(n)]
        busy = 0.0
        counts = {"impressions": n, "clicks": 0, "playbacks": 0, "watch_seconds": 0.0}
        for p in np.flatnonzero(clicked).tolist():
            click_ms = at_ms + int((1.0 + 0.4 * p + busy) * 1000)
            messages.append(event("click", click_ms, items[p], p))
            counts["clicks"] += 1
            if not plays[p] or duration[p] <= 0:
                busy += 2.0
                continue
            start = click_ms + 800
            end = start + int(watch[p] * 1000)
            length = float(duration[p])
            messages.append(event("playback.started", start, items[p], p, head=0.0, duration=length))
            kind = "playback.completed" if completed[p] else "playback.stopped"
            messages.append(event(kind, end, items[p], p, watch=float(watch[p]), head=float(watch[p]), duration=length))
            busy += 0.8 + float(watch[p]) + 10.0
            counts["playbacks"] += 1
            counts["watch_seconds"] += float(watch[p])
        return messages, counts

    def run(
        self,
        recommend: Recommend,
        producer: Producer,
        *,
        requests: int,
        k: int = 10,
        progress: Callable[[int, int], None] | None = None,
    ) -> TrafficSummary:
        """Send ``requests`` requests and write the users' feedback to ``producer``.

        Args:
            recommend: The recommender under test.
            producer: A producer of the ``events`` topic.
            requests: How many requests.
            k: Titles asked per request.
            progress: Called after each request with (done, total).

        Returns:
            The counts of what happened.
        """
        summary = TrafficSummary(start_ms=self.now_ms)
        for done in range(1, requests + 1):
            user = self.draw_user()
            try:
                served = recommend(self.world.population.user_ids[user], k)
                at = self.now_ms  # the user sees the answer once it has arrived (after the server logged it)
            except Exception as exc:  # noqa: BLE001 - a failed request is a fact of the traffic, counted
                summary.failed += 1
                summary.last_error = f"{type(exc).__name__}: {exc}"
            else:
                messages, counts = self.respond(user, served, at)
                summary.requests += 1
                summary.by_variant[served.variant] += 1
                summary.impressions += int(counts["impressions"])
                summary.clicks += int(counts["clicks"])
                summary.playbacks += int(counts["playbacks"])
                summary.watch_seconds += counts["watch_seconds"]
                for message in messages:
                    heapq.heappush(self._pending, (int(message[2] or 0), self._sequence, message))
                    self._sequence += 1
            if not self.realtime:
                self._now += max(1, int(self.rng.exponential(self.mean_gap_ms)))
            summary.events_written += self._release(producer, self.now_ms)
            if progress is not None:
                progress(done, requests)
        if not self.realtime:
            summary.events_written += self.drain(producer)
        summary.end_ms = self.now_ms
        producer.flush()
        return summary

    def _release(self, producer: Producer, until_ms: int) -> int:
        due: list[Message] = []
        while self._pending and self._pending[0][0] <= until_ms:
            due.append(heapq.heappop(self._pending)[2])
        return producer.send_many(due) if due else 0

    def drain(self, producer: Producer) -> int:
        """Write every pending feedback event now, in time order, and flush; returns how many."""
        written = self._release(producer, np.iinfo(np.int64).max)
        producer.flush()
        return written


def http_recommender(
    url: str, *, model: str = "recommender", rollout_id: str | None = None, grpc: bool = False, timeout_s: float = 5.0
) -> Recommend:
    """A ``recommend`` callable that asks the model server (the project's client, Open Inference Protocol v2).

    Args:
        url: ``host:port`` of the server's HTTP (or, with ``grpc``, gRPC) endpoint.
        model: Model name on the server.
        rollout_id: The running rollout, written to the feedback's ``context.experiment_id``
            (the server's answer does not carry it).
        grpc: Call over gRPC instead of HTTP.
        timeout_s: Per-request timeout.

    Returns:
        The callable; it raises :class:`flywheel.serving.client.RecommendClientError` on a refused
        or unreachable request (the traffic counts it as failed).
    """
    from flywheel.serving.client import recommend as call

    def recommend(user_id: str, k: int) -> Served:
        answer = call(url, user_id, k=k, model=model, grpc=grpc, timeout_s=timeout_s)
        return Served(
            request_id=answer.request_id,
            items=answer.items,
            scores=answer.scores,
            variant=answer.variant,
            model_name=model,
            model_version=answer.model_version,
            rollout_id=rollout_id,
        )

    return recommend
