"""The loop's day arithmetic: the warm-up users arrive with, the champion's window, the shift."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from flywheel.cli.main import app
from flywheel.config.models import FlywheelConfig
from monitoring.loop import DAY_MS, LoopDays


def test_a_warm_up_moves_the_shift_and_the_training_start_but_not_the_retraining_span() -> None:
    days = LoopDays(days=5, shift_day=3, warm_days=7)
    assert days.simulated_days == 12
    assert days.shift_at_day == 10
    assert days.training_start_ms(1_000) == 1_000 + 7 * DAY_MS
    assert days.shift_ms(1_000) == 1_000 + 10 * DAY_MS
    # the champion trains on the 3 days between the warm-up and the shift
    assert days.shift_ms(0) - days.training_start_ms(0) == 3 * DAY_MS


def test_without_a_warm_up_the_loop_keeps_its_days() -> None:
    days = LoopDays(days=5, shift_day=2.5)
    assert (days.simulated_days, days.shift_at_day, days.training_start_ms(0)) == (5, 2.5, 0)
    assert days.shift_ms(0) == int(2.5 * DAY_MS)


@pytest.mark.parametrize(("shift_day", "warm_days"), [(5, 0), (0, 0), (6, 3), (2, -1)])
def test_a_shift_outside_the_days_or_a_negative_warm_up_is_refused(shift_day: float, warm_days: int) -> None:
    with pytest.raises(ValueError):
        LoopDays(days=5, shift_day=shift_day, warm_days=warm_days)


def test_the_loop_command_simulates_streaming_users_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    """`flywheel monitor loop` (the demo) simulates users who come back about twice a day and know
    what they like; both settings are options, and they reach the simulator's configuration."""
    import monitoring.loop

    seen: list[FlywheelConfig] = []

    def run_loop(config: FlywheelConfig, **_: object) -> SimpleNamespace:
        seen.append(config)
        return SimpleNamespace(stages=[])

    monkeypatch.setattr(monitoring.loop, "run_loop", run_loop)
    base = ["monitor", "loop", "--users", "60", "--days", "3", "--shift-day", "2", "--warm-days", "0"]
    assert CliRunner().invoke(app, base).exit_code == 0
    assert CliRunner().invoke(app, [*base, "--sessions", "1.5", "--taste-scale", "6"]).exit_code == 0
    assert [(c.simulator.sessions_per_user_day, c.simulator.taste_scale) for c in seen] == [(2.0, 10.0), (1.5, 6.0)]
    assert seen[0].simulator.users == 60 and seen[0].simulator.days == 3
