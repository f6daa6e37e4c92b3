"""Where the pod specs and containers sit in each kind of rendered object."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
LONG_RUNNING_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "InferenceService"}


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec of a workload object (for an InferenceService, its predictor), else None."""
    kind = obj["kind"]
    if kind in POD_TEMPLATE_KINDS:
        return obj["spec"]["template"]["spec"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind == "Pod":
        return obj["spec"]
    if kind == "InferenceService":
        predictor = obj["spec"]["predictor"]
        return {**predictor, "containers": [predictor["model"]]}
    if kind == "ServingRuntime":
        return obj["spec"]
    return None


def containers(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(kind/name/container, container, pod spec) for every container and init container of an object."""
    spec = pod_spec(obj)
    if spec is None:
        return
    for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        yield f"{obj['kind']}/{obj['metadata']['name']}/{container.get('name', 'model')}", container, spec
