"""Models of known quality and an in-process router for the simulator-driven rollout tests.

The router does what the model server does for a rollout, in-process: it reads the rollout
from the registry (refreshed every ``refresh_every`` requests, like the server's poll, and on
:meth:`PolicyRouter.refresh`), assigns each user with ``assign_variant``, answers with the
policy registered for the variant's version, and writes one prediction record per request in
the contract's JSON. The analysis only ever sees the logs and the registry.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping

import numpy as np

from flywheel.events.log import Producer
from flywheel.registry.mlflow_registry import CHAMPION, version_by_alias
from flywheel.serving.prediction_log import PredictionRecord
from flywheel.serving.rollout_registry import read_state
from flywheel.serving.routing import assign_variant
from flywheel.simulator.traffic import Served
from flywheel.simulator.world import World

Policy = Callable[[str, int], tuple[list[str], list[float]]]


class AffinityPolicy:
    """Ranks the catalog by a noisy view of the true affinity (``sign`` -1 ranks it upside down).

    Less noise is a better model; ``sign=-1`` is a deliberately bad one.
    """

    def __init__(self, world: World, *, noise: float, sign: float = 1.0, seed: int = 0) -> None:
        cat = world.catalog
        n = cat.initial_count
        self.ids = np.array(cat.content_ids[:n])
        self.vectors, self.bias = cat.vectors[:n], cat.bias[:n]
        self.taste = world.population.taste
        self.users = {u: i for i, u in enumerate(world.population.user_ids)}
        self.noise, self.sign = noise, sign
        self.rng = np.random.default_rng(seed)

    def __call__(self, user_id: str, k: int) -> tuple[list[str], list[float]]:
        logit = self.vectors @ self.taste[self.users[user_id]] + self.bias
        score = self.sign * logit + self.rng.normal(0.0, self.noise, len(logit))
        top = np.argsort(-score, kind="stable")[:k]
        return self.ids[top].tolist(), score[top].tolist()


class PolicyRouter:
    """Champion / canary routing over policies keyed by registered version, logging predictions."""

    def __init__(
        self,
        model_name: str,
        policies: Mapping[str, Policy],
        predictions: Producer,
        clock: Callable[[], int],
        *,
        refresh_every: int = 200,
        latency_ms: Mapping[str, float] | None = None,
        error_rate: Mapping[str, float] | None = None,
    ) -> None:
        self.model_name = model_name
        self.policies = policies
        self.predictions = predictions
        self.clock = clock
        self.refresh_every = refresh_every
        self.latency_ms = dict(latency_ms or {})
        self.error_rate = dict(error_rate or {})
        self.rng = np.random.default_rng(5)
        self.calls = 0
        self.refresh()

    def refresh(self) -> None:
        """Re-read the rollout and the champion from the registry (the server's poll)."""
        self.state = read_state(self.model_name)
        champion = version_by_alias(self.model_name, CHAMPION)
        self.champion = champion.version if champion else ""

    def __call__(self, user_id: str, k: int) -> Served:
        self.calls += 1
        if self.calls % self.refresh_every == 0:
            self.refresh()
        state = self.state
        running = state.status == "running" and state.rollout_id is not None
        variant = assign_variant(user_id, state.rollout_id or "", state.fraction) if running else "champion"
        version = (state.canary_version or "") if variant == "canary" else self.champion
        request_id = uuid.UUID(int=int(self.rng.integers(0, 2**63)) << 64).hex
        failed = self.rng.random() < self.error_rate.get(variant, 0.0)
        items, scores = ([], []) if failed else self.policies[version](user_id, k)
        latency = self.latency_ms.get(variant, 2.0) * (1.0 + self.rng.exponential(0.2))
        record = PredictionRecord(
            request_id=request_id,
            timestamp_ms=self.clock(),
            user_id=user_id,
            model_name=self.model_name,
            model_version=version,
            variant=variant,
            rollout_id=state.rollout_id if running else None,
            features={},
            items=items,
            scores=scores,
            latency_ms=latency,
            error="ranker failed" if failed else None,
        )
        self.predictions.send(user_id, record.to_json(), record.timestamp_ms)
        if failed:
            raise RuntimeError("ranker failed")
        return Served(request_id, items, scores, variant, self.model_name, version, record.rollout_id)
