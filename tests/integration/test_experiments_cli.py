"""`flywheel experiments ...` end to end on a real local event log (simulated traffic)."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from flywheel.cli.main import app
from flywheel.config import load_config
from flywheel.events.log import open_event_log
from flywheel.experiments import stats

pytestmark = pytest.mark.integration
EXPERIMENT = "home_row_ranker_v2"
CLICK_LIFT = 0.08
ENV = {"COLUMNS": "200", "FLYWHEEL_CONFIG": ""}


def _config(tmp_path: Path, *, users: int = 3000, extra: str = "") -> Path:
    home = tmp_path / "home"
    path = tmp_path / "flywheel.yaml"
    path.write_text(
        f"""
home: {home}
event_log:
  partitions: 4
  local: {{path: {home}/log}}
simulator:
  seed: 11
  users: {users}
  days: 7
  ground_truth_dir: {home}/ground_truth
  experiments:
    - id: {EXPERIMENT}
      start: 3
      variants: {{control: 0.5, treatment: 0.5}}
      click_lift: {{treatment: {CLICK_LIFT}}}
experiments:
  alpha: 0.01  # 99 % intervals: the check survives changes of the simulator's random stream
  min_units_per_variant: 100
  report_dir: {home}/reports
  registry:
    layers: [{{name: home}}]
    experiments:
      - id: {EXPERIMENT}
        layer: home
        primary_metric: ctr
        metrics: [watch_hours, sessions, day1_active]
{extra}"""
    )
    return path


def _run(*args: str):  # noqa: ANN202 - typer's Result
    return CliRunner().invoke(app, ["experiments", *args], env=ENV)


def test_analyze_recovers_the_planted_ctr_lift(tmp_path: Path) -> None:
    from flywheel.simulator.engine import simulate

    config_path = _config(tmp_path)
    cfg = load_config(config_path)
    log = open_event_log(cfg.event_log)
    try:
        simulate(cfg, log=log, ground_truth=False)
        other = log.consumer("events", "someone-else")
        other.poll(500)
        other.commit()
        before = other.positions()
    finally:
        log.close()
    groups = sorted((cfg.event_log.local.path / "events" / "_groups").iterdir())

    result = _run("analyze", EXPERIMENT, "--config", str(config_path))
    assert result.exit_code == 0, result.output
    assert "ctr" in result.output and "report:" in result.output

    reports = cfg.experiments.report_dir
    html = reports / f"{EXPERIMENT}.html"
    assert html.is_file() and html.read_text().count("data:image/png;base64,") == 3
    summary = json.loads((reports / f"{EXPERIMENT}.json").read_text())
    ctr = next(r for r in summary["results"] if r["metric"] == "ctr")
    effect = ctr["effect"]
    print(
        f"\nplanted CTR lift {CLICK_LIFT:+.1%}; estimated {effect['relative']:+.2%} "
        f"[{effect['relative_ci_low']:+.2%}, {effect['relative_ci_high']:+.2%}] ({effect['method']}), "
        f"units {summary['units']}, SRM p={summary['srm']['p_value']:.3g}"
    )
    assert effect["relative_ci_low"] <= CLICK_LIFT <= effect["relative_ci_high"]
    assert effect["relative"] > 0
    assert not summary["srm"]["mismatch"]
    assert summary["status"] == "ok"

    # the analysis read the log without moving anybody's committed positions
    assert sorted((cfg.event_log.local.path / "events" / "_groups").iterdir()) == groups
    log = open_event_log(cfg.event_log)
    try:
        assert log.consumer("events", "someone-else").positions() == before
    finally:
        log.close()


def _write_events(cfg_path: Path, users: int) -> None:
    cfg = load_config(cfg_path)
    log = open_event_log(cfg.event_log)
    t0 = 1_767_225_600_000
    try:
        producer = log.producer("events")
        for i in range(users):
            user = f"user-{i}"
            for day, kind in ((0, "impression"), (4, "impression"), (4, "click")):
                on = day >= 3
                event = {
                    "event_id": f"00000000-0000-4000-8000-{i:06d}{day:02d}{len(kind):04d}",
                    "event_type": kind, "schema_version": 2, "timestamp_ms": t0 + day * 86_400_000,
                    "user_id": user, "session_id": f"{user}-{day}", "content_id": "c1",
                    "device": {"type": "tv", "os": "x", "app_version": "1"},
                    "context": {"experiment_id": EXPERIMENT if on else None,
                                "variant": ("control", "treatment")[i % 2] if on else None},
                }  # fmt: skip
                producer.send(user, orjson.dumps(event))
        producer.flush()
    finally:
        log.close()


def test_analyze_with_too_few_units_says_so_instead_of_a_p_value(tmp_path: Path) -> None:
    config_path = _config(tmp_path)
    _write_events(config_path, users=60)
    result = _run("analyze", EXPERIMENT, "--config", str(config_path))
    assert result.exit_code == 0, result.output
    assert "not enough units (n=30 in control, n=30 in treatment, need 100 per variant)" in result.output


def test_validate_rejects_an_overlapping_registry_with_the_reason(tmp_path: Path) -> None:
    registry = tmp_path / "registry.yaml"
    registry.write_text(
        "layers: [{name: home}]\nexperiments:\n"
        "  - {id: a, layer: home, allocation_percent: 60}\n"
        "  - {id: b, layer: home, offset_percent: 50, allocation_percent: 40}\n"
    )
    result = _run("validate", str(registry))
    assert result.exit_code == 2
    assert "experiments 'a' [0%, 60%) and 'b' [50%, 90%) overlap" in result.output
    ok = _run("validate", "--config", str(_config(tmp_path)))
    assert ok.exit_code == 0 and "registry is valid" in ok.output


def test_assign_agrees_with_the_simulator_contract(tmp_path: Path) -> None:
    from flywheel.simulator.population import assign_variant

    config_path = _config(tmp_path)
    for user in ("user-1", "user-2", "user-3", "u-42"):
        result = _run("assign", user, "--json", "--config", str(config_path))
        assert result.exit_code == 0, result.output
        (found,) = json.loads(result.output)["assignments"]
        expected = assign_variant(EXPERIMENT, user, {"control": 0.5, "treatment": 0.5})
        assert (found["experiment_id"], found["variant"]) == (EXPERIMENT, expected)


def test_plan_sizes_an_experiment() -> None:
    result = _run("plan", "--baseline", "0.1", "--mde", "0.05", "--daily-units", "10000")
    assert result.exit_code == 0, result.output
    n = stats.sample_size_proportions(0.1, 0.05)
    assert f"{n:,}" in result.output and f"{2 * n:,}" in result.output
    bad = _run("plan", "--baseline", "2.0", "--mde", "0.05")
    assert bad.exit_code == 2 and "must lie in (0, 1)" in bad.output
