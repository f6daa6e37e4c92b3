"""NetworkPolicies: every pod of the release denies ingress by default, and every Service port is opened."""

from __future__ import annotations

from typing import Any

from tests.chart.workloads import pod_spec
from tests.support.chart import Rendered, render_scenario


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return selector.get("matchLabels", {}).items() <= labels.items()


def _pods(rendered: Rendered) -> list[tuple[dict[str, str], dict[str, Any]]]:
    """(labels, pod spec) of every pod template of Deployments and StatefulSets."""
    return [
        (obj["spec"]["template"]["metadata"]["labels"], obj["spec"]["template"]["spec"])
        for obj in rendered.objects
        if obj["kind"] in {"Deployment", "StatefulSet"}
    ]


def _container_port(spec: dict[str, Any], target: int | str) -> int:
    if isinstance(target, int):
        return target
    for container in spec["containers"]:
        for port in container.get("ports", []):
            if port.get("name") == target:
                return int(port["containerPort"])
    raise LookupError(target)


def open_ports(rendered: Rendered, labels: dict[str, str]) -> set[int]:
    """The ports the release's NetworkPolicies open to ingress for pods with these labels."""
    ports: set[int] = set()
    for policy in rendered.of_kind("NetworkPolicy"):
        if _selects(policy["spec"]["podSelector"], labels):
            for rule in policy["spec"].get("ingress", []):
                ports |= {int(port["port"]) for port in rule.get("ports", [])}
    return ports


def test_every_pod_of_the_release_is_under_the_default_deny(rendered: Rendered) -> None:
    policies = rendered.of_kind("NetworkPolicy")
    if rendered.name == "minimal":
        assert policies == []
        return
    deny = [p for p in policies if p["metadata"]["name"].endswith("default-deny")]
    assert len(deny) == 1 and "ingress" not in deny[0]["spec"]
    for obj in rendered.objects:
        if pod_spec(obj) is not None and obj["kind"] in {"Deployment", "StatefulSet"}:
            assert _selects(deny[0]["spec"]["podSelector"], obj["spec"]["template"]["metadata"]["labels"])


def test_every_service_port_is_open_to_ingress(rendered: Rendered) -> None:
    if rendered.name == "minimal":
        assert rendered.of_kind("NetworkPolicy") == [], "minimal turns the policies off"
        return
    pods = _pods(rendered)
    for service in rendered.of_kind("Service"):
        selected = [(labels, spec) for labels, spec in pods if service["spec"]["selector"].items() <= labels.items()]
        for labels, spec in selected:
            for port in service["spec"]["ports"]:
                number = _container_port(spec, port.get("targetPort", port["port"]))
                assert number in open_ports(rendered, labels), f"{service['metadata']['name']}:{port['name']}"


def test_postgresql_admits_only_mlflow() -> None:
    rendered = render_scenario("default")
    policy = next(p for p in rendered.of_kind("NetworkPolicy") if p["metadata"]["name"] == "flywheel-allow-postgresql")
    sources = policy["spec"]["ingress"][0]["from"]
    assert sources == [
        {
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "flywheel",
                    "app.kubernetes.io/instance": "flywheel",
                    "app.kubernetes.io/component": "mlflow",
                }
            }
        }
    ]
