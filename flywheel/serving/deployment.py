"""Which versions serve: read from the MLflow registry (aliases + rollout tags), reloaded without restart.

The registry is the one source of truth for both modes: alias ``champion`` answers; ``challenger``
is the canary while the rollout tags say ``rollout.status = running``; ``shadow`` (optional) gets
copies. :class:`RegistryWatcher` polls the registered model every ``poll_interval_s``; when an
alias or a rollout tag changes it loads the versions it does not hold yet (download, build the
catalog index) and swaps the router's deployment whole. A failed poll or load keeps the current
deployment serving.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flywheel.registry.mlflow_registry import CHALLENGER, CHAMPION
from flywheel.serving.recommender import Recommender
from flywheel.serving.router import Deployment
from flywheel.serving.routing import RolloutState, rollout_from_tags

SHADOW = "shadow"
LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegistryView:
    """The part of the registered model that decides what serves."""

    aliases: dict[str, str]
    """{alias: version}"""
    runs: dict[str, str]
    """{version: run_id} of the aliased versions."""
    rollout: RolloutState

    def wanted(self) -> dict[str, str]:
        """{variant: version} that should serve now."""
        out: dict[str, str] = {}
        if CHAMPION in self.aliases:
            out["champion"] = self.aliases[CHAMPION]
        if CHALLENGER in self.aliases and self.rollout.canary_fraction > 0:
            out["canary"] = self.aliases[CHALLENGER]
        if SHADOW in self.aliases:
            out["shadow"] = self.aliases[SHADOW]
        return out


def read_registry(model_name: str) -> RegistryView:
    """Aliases, their runs and the rollout tags of ``model_name``.

    Raises:
        LookupError: The model is not registered.
        MlflowException: The registry cannot be read.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        model = client.get_registered_model(model_name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise LookupError(
            f"no registered model {model_name!r} in the registry: train one (flywheel pipeline run) or serve --bundle"
        ) from exc
    aliases = {alias: str(version) for alias, version in model.aliases.items()}
    runs = {v: str(client.get_model_version(model_name, v).run_id) for v in set(aliases.values())}
    return RegistryView(aliases, runs, rollout_from_tags(dict(model.tags)))


Loader = Callable[[str, str, str], Recommender]
"""(version, run_id, variant) -> a loaded Recommender (the variant picks e.g. its Triton predictor)."""


def bundle_loader(cache_dir: Path, build: Callable[[Path, str, str], Recommender]) -> Loader:
    """A loader that downloads a version's bundle into ``cache_dir/<version>`` once and builds it."""
    from flywheel.registry.mlflow_registry import download_bundle

    def load(version: str, run_id: str, variant: str) -> Recommender:
        folder = cache_dir / version / "bundle"
        if not (folder / "spec.json").exists():
            folder = download_bundle(run_id, cache_dir / version)
        return build(folder, version, variant)

    return load


class RegistryWatcher:
    """Polls the registry and swaps the deployment when what should serve changes."""

    def __init__(
        self,
        model_name: str,
        served_name: str,
        loader: Loader,
        *,
        read: Callable[[str], RegistryView] = read_registry,
        on_change: Callable[[Deployment], None] | None = None,
    ) -> None:
        self.model_name = model_name
        self.served_name = served_name
        self.loader = loader
        self.read = read
        self.on_change = on_change
        self.view: RegistryView | None = None
        self.deployment: Deployment | None = None
        self.errors = 0
        self._loaded: dict[tuple[str, str], Recommender] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> bool:
        """Read the registry once; rebuild the deployment when it changed. True when it was swapped.

        Raises:
            LookupError: The registered model has no champion (and nothing serves yet).
        """
        view = self.read(self.model_name)
        if view == self.view and self.deployment is not None:
            return False
        wanted = view.wanted()
        if "champion" not in wanted:
            raise LookupError(f"registered model {self.model_name!r} has no {CHAMPION!r} alias")
        loaded = {
            (variant, v): self._loaded.get((variant, v)) or self.loader(v, view.runs[v], variant)
            for variant, v in wanted.items()
        }
        deployment = Deployment(
            self.served_name,
            champion=loaded[("champion", wanted["champion"])],
            canary=loaded[("canary", wanted["canary"])] if "canary" in wanted else None,
            shadow=loaded[("shadow", wanted["shadow"])] if "shadow" in wanted else None,
            rollout=view.rollout,
        )
        self._loaded, self.view, self.deployment = loaded, view, deployment
        if self.on_change is not None:
            self.on_change(deployment)
        return True

    def start(self, interval_s: float) -> None:
        """Poll every ``interval_s`` seconds on a daemon thread (errors are logged and counted)."""

        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.poll()
                except Exception:  # noqa: BLE001 - keep serving the current deployment
                    self.errors += 1
                    LOG.exception("registry poll failed; the current deployment keeps serving")

        self._thread = threading.Thread(target=loop, name="registry-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
