"""Policies every rendered workload keeps: non-root, read-only root, resources, probes, pinned images."""

from __future__ import annotations

import re

from tests.chart.workloads import LONG_RUNNING_KINDS, containers, pod_spec
from tests.support.chart import Rendered

PINNED_IMAGE = re.compile(r"^[a-z0-9./_-]+(:[0-9]+)?/?[a-z0-9./_-]*:(?!latest$)[A-Za-z0-9._-]+(@sha256:[0-9a-f]{64})?$")


def test_every_workload_has_containers(rendered: Rendered) -> None:
    found = [name for obj in rendered.objects for name, _, _ in containers(obj)]
    assert len(found) >= 4


def test_every_container_runs_as_non_root_on_a_read_only_root(rendered: Rendered) -> None:
    for name, container, spec in containers_of(rendered):
        context = container.get("securityContext", {})
        pod_context = spec.get("securityContext", {})
        assert context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is True, name
        assert context.get("runAsUser", pod_context.get("runAsUser", 0)) != 0, name
        assert context.get("readOnlyRootFilesystem") is True, name
        assert context.get("allowPrivilegeEscalation") is False, name
        assert context.get("capabilities", {}).get("drop") == ["ALL"], name


def test_every_container_sets_requests_and_limits(rendered: Rendered) -> None:
    for name, container, _ in containers_of(rendered):
        resources = container.get("resources", {})
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(bound, {})), f"{name}: {bound}"


def test_long_running_containers_have_readiness_and_liveness_probes(rendered: Rendered) -> None:
    for obj in rendered.objects:
        if obj["kind"] not in LONG_RUNNING_KINDS:
            continue
        for name, container, _ in containers(obj):
            assert "readinessProbe" in container, name
            assert "livenessProbe" in container, name


def test_every_image_is_pinned_by_tag(rendered: Rendered) -> None:
    images = 0
    for name, container, _ in containers_of(rendered):
        if name.startswith("InferenceService/"):
            assert "image" not in container, f"{name}: the image comes from the ServingRuntime"
            continue
        assert PINNED_IMAGE.match(container["image"]), f"{name}: {container['image']}"
        images += 1
    assert images >= 3


def test_the_pinned_image_rule_rejects_latest_and_untagged() -> None:
    assert PINNED_IMAGE.match("nvcr.io/nvidia/tritonserver:25.01-py3")
    assert PINNED_IMAGE.match("localhost:5000/flywheel:0.1.0")
    assert not PINNED_IMAGE.match("redis:latest")
    assert not PINNED_IMAGE.match("redis")


def test_pods_mount_no_service_account_token_unless_they_call_the_api(rendered: Rendered) -> None:
    for obj in rendered.objects:
        spec = pod_spec(obj)
        if spec is None or obj["kind"] == "ServingRuntime":
            continue
        assert spec.get("automountServiceAccountToken") is False, obj["metadata"]["name"]


def test_secrets_are_only_referenced(rendered: Rendered) -> None:
    assert rendered.of_kind("Secret") == []
    for name, container, _ in containers_of(rendered):
        for env in container.get("env", []):
            if re.search(r"PASSWORD|SECRET|TOKEN$|_KEY", env["name"]):
                assert "value" not in env or "$(" in env.get("value", "") or env["name"].endswith("_PATH"), name


def containers_of(rendered: Rendered) -> list[tuple[str, dict, dict]]:  # type: ignore[type-arg]
    """Every container of every object of a rendering."""
    return [item for obj in rendered.objects for item in containers(obj)]
