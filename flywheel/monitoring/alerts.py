"""Which retrain alerts a drift run raises, for the in-process path of the loop: the same
conditions as the Prometheus rules of ``monitoring/rules/drift.yaml`` (drifted share, score
drift, target drift), decided from the drift job's JSON-ready results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class FiringAlert:
    """One alert the drift results raise."""

    key: str
    """Unique per alert and label set, e.g. ``FlywheelFeatureDrift/events``."""
    name: str
    """The alert rule's name."""
    summary: str


def firing_alerts(results: Sequence[Mapping[str, Any]], *, max_drift_share: float) -> list[FiringAlert]:
    """The alerts of ``results`` (``SourceResult.to_dict()`` of each source), in a stable order.

    A source whose features are undecided (``insufficient_data``) raises no feature alert; score
    and target alerts follow their own statuses, which are ``insufficient_data`` below their minimums.
    """
    firing: dict[str, FiringAlert] = {}
    for result in results:
        source, features = result["source"], result["features"]
        if features["status"] != "insufficient_data" and features["share"] >= max_drift_share:
            key = f"FlywheelFeatureDrift/{source}"
            summary = f"{features['share']:.0%} of the {source} features drifted"
            firing[key] = FiringAlert(key, "FlywheelFeatureDrift", summary)
        scores = result.get("scores") or {}
        if scores.get("status") == "drift":
            key = "FlywheelPredictionDrift"
            firing[key] = FiringAlert(key, "FlywheelPredictionDrift", str(scores["detail"]))
        for target in result.get("targets", ()):
            if target["status"] == "drift":
                key = f"FlywheelTargetDrift/{target['target']}"
                firing[key] = FiringAlert(key, "FlywheelTargetDrift", str(target["detail"]))
    return list(firing.values())


def drifted_shares(results: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The drifted feature share of every source whose features were decided."""
    decided = [r for r in results if r["features"]["status"] != "insufficient_data"]
    return {r["source"]: float(r["features"]["share"]) for r in decided}
