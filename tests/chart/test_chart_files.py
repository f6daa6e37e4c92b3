"""The chart loads the monitoring folder's rule files and dashboards, copied unchanged."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.chart import CHART_DIR, ROOT, Rendered

COPIES = {"rules": "*.yaml", "dashboards": "*.json"}


@pytest.mark.parametrize("folder", sorted(COPIES))
def test_chart_copies_equal_the_monitoring_files(folder: str) -> None:
    originals = {p.name: p.read_bytes() for p in (ROOT / "monitoring" / folder).glob(COPIES[folder])}
    copies = {p.name: p.read_bytes() for p in (CHART_DIR / "files" / folder).glob(COPIES[folder])}
    assert originals, f"monitoring/{folder} is empty"
    assert sorted(copies) == sorted(originals), "run scripts/sync-chart-files.sh"
    for name, content in originals.items():
        assert copies[name] == content, (
            f"charts/flywheel/files/{folder}/{name} differs: run scripts/sync-chart-files.sh"
        )


def test_every_rule_file_becomes_a_prometheus_rule(rendered: Rendered) -> None:
    rules = rendered.of_kind("PrometheusRule")
    if rendered.name == "minimal":
        assert rules == []
        return
    sources = sorted(obj["metadata"]["annotations"]["flywheel.dev/source"] for obj in rules)
    assert sources == sorted(f"monitoring/rules/{p.name}" for p in (ROOT / "monitoring" / "rules").glob("*.yaml"))
    for obj in rules:
        original = yaml.safe_load((ROOT / obj["metadata"]["annotations"]["flywheel.dev/source"]).read_text())
        assert obj["spec"]["groups"] == original["groups"]


def test_rendered_rules_pass_promtool(rendered: Rendered, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/install-system-deps.sh installs the prometheus package"
    for obj in rendered.of_kind("PrometheusRule"):
        path = tmp_path / f"{obj['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump({"groups": obj["spec"]["groups"]}), encoding="utf-8")
        result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_dashboard_becomes_a_sidecar_configmap(rendered: Rendered) -> None:
    maps = [obj for obj in rendered.of_kind("ConfigMap") if obj["metadata"]["labels"].get("grafana_dashboard") == "1"]
    if rendered.name == "minimal":
        assert maps == []
        return
    originals = {p.name: json.loads(p.read_text()) for p in (ROOT / "monitoring" / "dashboards").glob("*.json")}
    loaded = {name: json.loads(text) for obj in maps for name, text in obj["data"].items()}
    assert loaded == originals
    for dashboard in loaded.values():
        assert dashboard["uid"] and dashboard["title"] and dashboard["panels"]
