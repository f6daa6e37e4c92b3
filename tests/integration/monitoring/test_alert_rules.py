"""The alert rules: valid for Prometheus, each with `for:`, a severity and a runbook line, and each
covered by a `promtool test rules` unit test (tests/promtool/) that passes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
RULES = sorted((ROOT / "monitoring" / "rules").glob("*.yaml"))
PROMTOOL_TESTS = ROOT / "tests" / "promtool"


def _promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        raise FileNotFoundError("promtool is not installed: run scripts/install-system-deps.sh (Debian prometheus)")
    return binary


def _alerts(path: Path) -> list[dict]:
    return [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"] if "alert" in rule]


def test_rule_files_are_valid_prometheus_rule_files() -> None:
    assert RULES, "no rule files under monitoring/rules"
    result = subprocess.run([_promtool(), "check", "rules", *map(str, RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", RULES, ids=lambda p: p.stem)
def test_every_alert_has_for_severity_and_runbook(path: Path) -> None:
    for alert in _alerts(path):
        assert "for" in alert, alert["alert"]
        assert alert["labels"]["severity"] in ("info", "warning", "critical"), alert["alert"]
        assert alert["annotations"]["runbook"].strip(), alert["alert"]
        assert alert["annotations"]["summary"].strip(), alert["alert"]


@pytest.mark.parametrize("path", RULES, ids=lambda p: p.stem)
def test_every_alert_is_unit_tested_by_promtool(path: Path) -> None:
    test_file = PROMTOOL_TESTS / f"{path.stem}.test.yaml"
    spec = yaml.safe_load(test_file.read_text())
    tested = {
        case["alertname"]
        for test in spec["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert {a["alert"] for a in _alerts(path)} <= tested
    result = subprocess.run([_promtool(), "test", "rules", str(test_file)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_routes_retrain_alerts_to_the_trigger() -> None:
    config = ROOT / "monitoring" / "alertmanager" / "alertmanager.yaml"
    amtool = shutil.which("amtool")
    if amtool is None:
        raise FileNotFoundError("amtool is not installed: run scripts/install-system-deps.sh (prometheus-alertmanager)")
    routed = subprocess.run(
        [
            amtool,
            "config",
            "routes",
            "test",
            f"--config.file={config}",
            "alertname=FlywheelFeatureDrift",
            "retrain=true",
        ],
        capture_output=True,
        text=True,
    )
    assert routed.stdout.split() == ["retrain-trigger"], routed.stdout + routed.stderr
    other = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={config}", "alertname=FlywheelServingLatencySLO"],
        capture_output=True,
        text=True,
    )
    assert other.stdout.split() == ["default"], other.stdout + other.stderr


def test_rules_use_only_metrics_the_code_exports() -> None:
    from tests.integration.monitoring.test_dashboards import _METRIC, exported_names

    known = exported_names()
    used = {(p.stem, name) for p in RULES for a in _alerts(p) for name in _METRIC.findall(a["expr"])}
    assert sorted((stem, name) for stem, name in used if name not in known) == []
