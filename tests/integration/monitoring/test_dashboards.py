"""The Grafana dashboards: every PromQL expression parses (promtool on a generated rule file), uses
only metrics the code exports, every panel has a unit, and the JSON matches its specification."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from monitoring import metrics
from monitoring.dashboards.build import DASHBOARDS, dashboard

pytestmark = pytest.mark.integration
FOLDER = Path(__file__).resolve().parents[3] / "monitoring" / "dashboards"
FILES = sorted(FOLDER.glob("*.json"))
SUFFIXES = ("", "_total", "_bucket", "_sum", "_count", "_created")
_METRIC = re.compile(r"\bflywheel_[a-zA-Z0-9_:]*")


def exported_names() -> set[str]:
    """Every series name the metrics module can expose (family names with their suffixes)."""
    names = set()
    for family in metrics.REGISTRY.collect():
        names |= {family.name + suffix for suffix in SUFFIXES}
    return names


def _targets() -> list[tuple[str, str, dict]]:
    out = []
    for path in FILES:
        for panel in json.loads(path.read_text())["panels"]:
            out += [(path.stem, panel["title"], target) for target in panel["targets"]]
    return out


def test_the_six_dashboards_exist_and_match_their_specification() -> None:
    assert set(DASHBOARDS) <= {p.stem for p in FILES}
    for uid, (title, panels) in DASHBOARDS.items():
        assert json.loads((FOLDER / f"{uid}.json").read_text()) == dashboard(uid, title, panels), (
            f"{uid}.json is stale: run python -m monitoring.dashboards.build"
        )


def test_every_panel_has_a_unit_and_a_query() -> None:
    for path in FILES:
        for panel in json.loads(path.read_text())["panels"]:
            assert panel["fieldConfig"]["defaults"]["unit"], f"{path.stem}: {panel['title']} has no unit"
            assert panel["targets"], f"{path.stem}: {panel['title']} has no query"


def test_every_expression_uses_only_exported_metrics() -> None:
    known = exported_names()
    unknown = sorted(
        {(uid, title, name) for uid, title, t in _targets() for name in _METRIC.findall(t["expr"]) if name not in known}
    )
    assert unknown == []


def test_every_expression_parses_with_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        raise FileNotFoundError("promtool is not installed: run scripts/install-system-deps.sh (Debian prometheus)")
    rules = [{"record": f"dashboard:{i}", "expr": t["expr"]} for i, (_, _, t) in enumerate(_targets())]
    path = tmp_path / "dashboards.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout
