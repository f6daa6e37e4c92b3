"""The whole loop on a small configuration: the stages happen in order, drift is detected (in the
event stream and, on its own clock, in the prediction log),
exactly one retraining starts (a repeated alert is held by the guards), and a decision about
the challenger is recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from flywheel.config import load_config
from flywheel.config.models import FlywheelConfig
from monitoring.loop import run_loop

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ORDER = ["simulate", "features", "train", "serve-before", "stream", "serve-after", "detect", "retrain", "canary"]


def small_config(home: Path) -> FlywheelConfig:
    raw = load_config(env={"FLYWHEEL_HOME": str(home)}).model_dump(mode="json")
    raw["simulator"].update(users=300, items=400, days=4, new_items_per_day=5)
    raw["simulator"]["scenarios"]["taste_drift"].update(enabled=True, at_day=3, users_fraction=0.8, strength=3.0)
    raw["simulator"]["scenarios"]["device_shift"].update(enabled=True, at_day=3, sessions_fraction=0.8)
    raw["training"]["retrieval"].update(epochs=2)
    raw["training"]["ranker"].update(epochs=2)
    raw["training"]["quality"].update(min_rows=500)
    raw["training"]["promotion"].update(max_latency_ms_p99=1000.0, min_ndcg_vs_popularity=0.0)
    raw["rollout"].update(schedule=[0.2, 0.5], min_impressions_per_stage=800, min_units_per_variant=30)
    return FlywheelConfig.model_validate(raw)


def test_the_loop_runs_its_stages_in_order_and_retrains_once(tmp_path: Path) -> None:
    with open(tmp_path / "loop.log", "w") as log:
        result = run_loop(small_config(tmp_path), console=Console(file=log), shift_day=3, requests=400)
    assert [s.name for s in result.stages] == ORDER
    assert not [s for s in result.stages if s.status == "failed"]
    assert result.facts["drift"]["events"]["status"] == "drift"
    # the prediction log is windowed on its own (the server's) clock: both serving phases are found,
    # the second one's scores are decided against the first one's
    predictions = result.facts["drift"]["predictions"]
    assert predictions["features"]["status"] != "insufficient_data"
    assert predictions["scores"]["status"] in ("drift", "ok")
    decisions = [(d["action"], d["guard"]) for d in result.facts["decisions"]]
    assert decisions.count(("start", "fired")) == 1
    assert ("skip", "debounce") in decisions  # the repeated alert starts nothing
    assert [a for a, _ in decisions].count("finish") == 1
    outcome = result.facts["retraining"]
    assert outcome["status"] in ("registered", "stopped")
    kinds = [e.kind for e in result.timeline]
    assert kinds.index("alert") < kinds.index("retraining")
    decision = result.facts["decision"]
    assert decision["action"] in ("promoted", "rolled back", "kept")  # a challenger that lost keeps the champion
    assert decision["reason"]
    if decision["action"] != "promoted":
        assert result.facts["champion_after"] == result.facts["champion"]
    assert Path(result.report).exists()
