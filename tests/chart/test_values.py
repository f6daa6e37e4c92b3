"""Values: the schema rejects bad input at `helm install` with the key named; no secret in any values file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from flywheel.config.loader import load_config
from tests.support.chart import CHART_DIR, NAMESPACE, RELEASE, Rendered

UNREACHABLE_CLUSTER = """\
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
users: [{name: none, user: {}}]
"""
SECRET_KEY = re.compile(r"(password|passwd|secret(?!name)|token|access.?key|private.?key|credential)", re.IGNORECASE)


def helm_install(values: dict[str, Any]) -> dict[str, Any]:
    """`helm install --dry-run=client` through Helm's SDK: values checks run, no cluster is contacted."""
    config = helm_python.Config(storage_driver="memory", namespace=NAMESPACE, kubeconfig_content=UNREACHABLE_CLUSTER)
    release: dict[str, Any] = config.install(CHART_DIR, RELEASE, values, dry_run="client", namespace=NAMESPACE)
    return release


def test_install_with_the_defaults_succeeds() -> None:
    release = helm_install({})
    assert "kind: InferenceService" in release["manifest"]


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"serving": {"rotuer": {"replicas": 2}}}, "at '/serving': additional properties 'rotuer' not allowed"),
        ({"redis": {"enabled": "yes"}}, "at '/redis/enabled': got string, want boolean"),
        ({"stream": {"replicas": "2"}}, "at '/stream/replicas': got string, want integer"),
        (
            {"mlflow": {"postgresql": {"password": "hunter2"}}},
            "at '/mlflow/postgresql': additional properties 'password'",
        ),
        ({"s3": {"existingSecret": "AKIA/plain+secret=="}}, "at '/s3/existingSecret'"),
        ({"image": {"tag": "latest"}}, "at '/image/tag'"),
    ],
    ids=["unknown-key", "wrong-type", "string-for-int", "plain-text-password", "secret-value-as-name", "latest-tag"],
)
def test_install_rejects_bad_values_naming_the_key(values: dict[str, Any], named: str) -> None:
    with pytest.raises(helm_python.HelmError) as error:
        helm_install(values)
    assert named in str(error.value)


def test_install_rejects_a_missing_external_address() -> None:
    with pytest.raises(helm_python.HelmError, match="redis.externalAddress is required when redis.enabled is false"):
        helm_install({"redis": {"enabled": False}})


def _secret_like(values: Any, path: str = "") -> list[str]:
    """Keys that look like a secret and hold a value (Secret *names* end in existingSecret/Secret and are fine)."""
    found: list[str] = []
    if isinstance(values, dict):
        for key, value in values.items():
            where = f"{path}.{key}" if path else str(key)
            if SECRET_KEY.search(str(key)) and not str(key).endswith(("existingSecret", "Secret", "Secrets")):
                found.append(where)
            found += _secret_like(value, where)
    elif isinstance(values, list):
        for i, item in enumerate(values):
            found += _secret_like(item, f"{path}[{i}]")
    return found


@pytest.mark.parametrize(
    "path", [CHART_DIR / "values.yaml", *sorted((CHART_DIR / "ci").glob("*.yaml"))], ids=lambda p: p.name
)
def test_no_values_file_holds_a_secret(path: Path) -> None:
    assert _secret_like(yaml.safe_load(path.read_text(encoding="utf-8"))) == []


def test_the_secret_scan_finds_a_password() -> None:
    assert _secret_like({"mlflow": {"postgresql": {"password": "x", "existingSecret": "pg"}}}) == [
        "mlflow.postgresql.password"
    ]


def test_the_rendered_flywheel_configuration_loads(rendered: Rendered, tmp_path: Path) -> None:
    configmap = next(obj for obj in rendered.of_kind("ConfigMap") if obj["metadata"]["name"] == "flywheel-config")
    path = tmp_path / "flywheel.yaml"
    path.write_text(configmap["data"]["flywheel.yaml"], encoding="utf-8")
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
        "REDIS_URL": "redis:6379",
        "MLFLOW_TRACKING_URI": "http://mlflow:5000",
    }
    config = load_config(path, env=env)
    assert config.event_log.backend == "kafka"
    assert config.features.online_store == "redis"
    assert config.training.tracking_uri == "http://mlflow:5000"


def _objects_without_closed_keys(schema: Any, where: str = "") -> list[str]:
    """Paths of object schemas that would accept keys they do not list."""
    found: list[str] = []
    if isinstance(schema, dict):
        if schema.get("type") == "object" and schema.get("additionalProperties") is not False:
            found.append(where or "/")
        for key, value in schema.items():
            found += _objects_without_closed_keys(value, f"{where}/{key}")
    elif isinstance(schema, list):
        for i, item in enumerate(schema):
            found += _objects_without_closed_keys(item, f"{where}/{i}")
    return found


def test_every_object_of_the_values_schema_rejects_unknown_keys() -> None:
    import json

    schema = json.loads((CHART_DIR / "values.schema.json").read_text(encoding="utf-8"))
    assert _objects_without_closed_keys(schema) == []
    assert _objects_without_closed_keys({"type": "object", "properties": {"a": {"type": "object"}}}) == [
        "/",
        "/properties/a",
    ]


def test_every_value_has_a_schema_entry() -> None:
    import json

    schema = json.loads((CHART_DIR / "values.schema.json").read_text(encoding="utf-8"))

    def missing(values: Any, node: dict[str, Any], where: str) -> list[str]:
        if not isinstance(values, dict):
            return []
        out = []
        for key, value in values.items():
            child = node.get("properties", {}).get(key)
            out += [f"{where}.{key}"] if child is None else missing(value, child, f"{where}.{key}")
        return out

    assert missing(yaml.safe_load((CHART_DIR / "values.yaml").read_text(encoding="utf-8")), schema, "") == []
