"""The chart renders in every scenario, each object passes its schema, and the goldens and manifests match."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import helm_python
import kubernetes_validate
import pytest

from tests.support.chart import (
    CHART_DIR,
    GOLDEN_DIR,
    MANIFESTS_DIR,
    MANIFESTS_SCENARIO,
    Rendered,
    golden_text,
    load_values,
    manifest_files,
    render_scenario,
    scenarios,
)

KUBERNETES_VERSION = "1.33.0"
"""The Kubernetes version kind-config.yaml pins (kindest/node v1.33)."""
CUSTOM_GROUPS = ("serving.kserve.io/", "monitoring.coreos.com/")
KSERVE_MODELS = {"InferenceService": "V1beta1InferenceService", "ServingRuntime": "V1alpha1ServingRuntime"}


def _is_custom(obj: dict[str, Any]) -> bool:
    return str(obj["apiVersion"]).startswith(CUSTOM_GROUPS)


def test_every_scenario_renders_named_objects(rendered: Rendered) -> None:
    assert rendered.objects, f"{rendered.name}: nothing rendered"
    keys = Counter(
        (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]) for obj in rendered.objects
    )
    assert [key for key, count in keys.items() if count > 1] == []
    for obj in rendered.objects:
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "flywheel", obj["metadata"]["name"]
        assert len(obj["metadata"]["name"]) <= 63


def test_core_objects_pass_the_kubernetes_schemas_strictly(rendered: Rendered) -> None:
    core = [obj for obj in rendered.objects if not _is_custom(obj)]
    assert core
    for obj in core:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_strict_schema_check_rejects_an_unknown_field() -> None:
    deployment = copy.deepcopy(render_scenario("default").of_kind("Deployment")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "bool": (bool,),
    "float": (int, float),
    "object": (object,),
    "ResourceQuantity": (str, int, float),
    "datetime": (str,),
}


def _model_class(type_name: str) -> Any:
    """The generated model class of a type name, from the kserve SDK or the Kubernetes client it builds on."""
    import kserve.models
    import kubernetes.client.models

    for module in (kserve.models, kubernetes.client.models):
        if hasattr(module, type_name):
            return getattr(module, type_name)
    raise LookupError(type_name)


def model_errors(data: Any, type_name: str, where: str) -> list[str]:
    """Check data against an SDK model type, recursively: every key known, every value of its type."""
    if type_name.startswith("list["):
        if not isinstance(data, list):
            return [f"{where}: expected a list"]
        return [error for i, item in enumerate(data) for error in model_errors(item, type_name[5:-1], f"{where}[{i}]")]
    if type_name.startswith("dict("):
        if not isinstance(data, dict):
            return [f"{where}: expected a mapping"]
        value_type = type_name[5:-1].split(", ", 1)[1]
        return [error for key, value in data.items() for error in model_errors(value, value_type, f"{where}.{key}")]
    if type_name in PRIMITIVES:
        ok = isinstance(data, PRIMITIVES[type_name]) and not (type_name == "int" and isinstance(data, bool))
        return [] if ok else [f"{where}: expected {type_name}, got {type(data).__name__}"]
    if not isinstance(data, dict):
        return [f"{where}: expected an object ({type_name})"]
    model = _model_class(type_name)
    fields = {json_key: model.openapi_types[attr] for attr, json_key in model.attribute_map.items()}
    errors = [f"{where}.{key}: not a field of {type_name}" for key in data if key not in fields]
    for key, value in data.items():
        if key in fields and value is not None:
            errors += model_errors(value, fields[key], f"{where}.{key}")
    return errors


def test_kserve_objects_match_the_kserve_sdk_models(rendered: Rendered) -> None:
    objects = [obj for obj in rendered.objects if obj["kind"] in KSERVE_MODELS]
    assert {obj["kind"] for obj in objects} == set(KSERVE_MODELS)
    for obj in objects:
        assert model_errors(obj, KSERVE_MODELS[obj["kind"]], obj["metadata"]["name"]) == []


def test_the_kserve_check_catches_a_misplaced_field_and_a_wrong_type() -> None:
    isvc = copy.deepcopy(render_scenario("default").of_kind("InferenceService")[0])
    model = isvc["spec"]["predictor"]["model"]
    model["storageURI"] = model.pop("storageUri")
    isvc["spec"]["predictor"]["minReplicas"] = "one"
    errors = model_errors(isvc, "V1beta1InferenceService", "isvc")
    assert errors == [
        "isvc.spec.predictor.minReplicas: expected int, got str",
        "isvc.spec.predictor.model.storageURI: not a field of V1beta1ModelSpec",
    ]


def operator_round_trip(obj: dict[str, Any]) -> dict[str, Any]:
    """Load a Prometheus Operator object into its CRD model and dump it back: unknown fields fall out.

    Raises:
        pydantic.ValidationError: A field has the wrong type.
    """
    from cloudcoil.models.prometheus_operator import v1

    model = getattr(v1, obj["kind"]).model_validate(obj)
    result: dict[str, Any] = model.model_dump(by_alias=True, exclude_unset=True, mode="json")
    return result


def test_prometheus_operator_objects_match_the_crd_models(rendered: Rendered) -> None:
    objects = [obj for obj in rendered.objects if obj["apiVersion"] == "monitoring.coreos.com/v1"]
    if rendered.name != "minimal":
        assert {obj["kind"] for obj in objects} == {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
    for obj in objects:
        assert operator_round_trip(obj) == obj, f"{obj['kind']}/{obj['metadata']['name']} has fields the CRD lacks"


def test_the_operator_check_catches_an_unknown_field_a_missing_one_and_a_wrong_type() -> None:
    import pydantic

    monitor = copy.deepcopy(render_scenario("default").of_kind("ServiceMonitor")[0])
    monitor["spec"]["endpoint"] = [{"port": "http"}]
    assert operator_round_trip(monitor) != monitor
    del monitor["spec"]["endpoints"]
    with pytest.raises(pydantic.ValidationError, match="spec.endpoints"):
        operator_round_trip(monitor)
    rule = copy.deepcopy(render_scenario("default").of_kind("PrometheusRule")[0])
    rule["spec"]["groups"][0]["rules"] = "not a list"
    with pytest.raises(pydantic.ValidationError):
        operator_round_trip(rule)


def test_inference_services_run_on_the_charts_triton_runtime_in_standard_mode(rendered: Rendered) -> None:
    runtimes = {obj["metadata"]["name"] for obj in rendered.of_kind("ServingRuntime")}
    variants = []
    for isvc in rendered.of_kind("InferenceService"):
        assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
        assert isvc["spec"]["predictor"]["model"]["runtime"] in runtimes
        variants.append(isvc["metadata"]["labels"]["flywheel.dev/variant"])
    values = load_values(scenarios()[rendered.name])
    expected = {"default": ["champion", "canary"], "minimal": ["champion"], "full": ["champion", "canary", "shadow"]}
    assert variants == expected.get(rendered.name, ["champion", "canary"]), values


def test_monitors_select_a_rendered_service_port(rendered: Rendered) -> None:
    services = rendered.of_kind("Service")
    for monitor in rendered.of_kind("ServiceMonitor"):
        selector = monitor["spec"]["selector"]["matchLabels"]
        matching = [svc for svc in services if selector.items() <= svc["metadata"]["labels"].items()]
        assert len(matching) == 1, monitor["metadata"]["name"]
        port_names = {port["name"] for port in matching[0]["spec"]["ports"]}
        assert {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]} <= port_names
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_services_select_a_rendered_workload(rendered: Rendered) -> None:
    templates = [
        obj["spec"]["template"]["metadata"]["labels"]
        for obj in rendered.objects
        if obj["kind"] in {"Deployment", "StatefulSet"}
    ]
    for service in rendered.of_kind("Service"):
        selector = service["spec"]["selector"]
        assert any(selector.items() <= labels.items() for labels in templates), service["metadata"]["name"]


def test_workloads_restart_when_the_configuration_changes() -> None:
    base = render_scenario("default")
    changed = helm_python.Chart.load(CHART_DIR).render({"s3": {"bucket": "other-bucket"}}, name="flywheel")
    router_before = next(obj for obj in base.of_kind("Deployment") if obj["metadata"]["name"] == "flywheel-router")
    checksum = router_before["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    assert checksum not in changed["flywheel/templates/serving/router.yaml"]


def test_helm_lint_finds_no_warning(rendered: Rendered) -> None:
    report = helm_python.lint(
        CHART_DIR, load_values(scenarios()[rendered.name]), strict=True, kube_version=f"v{KUBERNETES_VERSION}"
    )
    assert report["errors"] == []
    assert [message for message in report["messages"] if message["severity"] >= 2] == []


def test_rendering_matches_the_golden_file(rendered: Rendered) -> None:
    golden = GOLDEN_DIR / f"{rendered.name}.yaml"
    assert golden.exists(), f"no golden for {rendered.name}: run make goldens"
    assert golden_text(rendered) == golden.read_text(encoding="utf-8"), f"{golden} is stale: run make goldens"


def test_manifests_are_the_chart_rendered_with_its_defaults() -> None:
    expected = manifest_files(render_scenario(MANIFESTS_SCENARIO))
    on_disk = {
        str(path.relative_to(MANIFESTS_DIR)): path.read_text(encoding="utf-8") for path in MANIFESTS_DIR.rglob("*.yaml")
    }
    assert sorted(on_disk) == sorted(expected), "manifests/ lists other files than the chart renders: make goldens"
    for relative, text in expected.items():
        assert on_disk[relative] == text, f"manifests/{relative} is stale: make goldens"
    assert not any("helm.sh/hook: test" in text for text in on_disk.values())
