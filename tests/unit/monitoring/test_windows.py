"""Each source is windowed on its own clock; a window's baseline is on the same clock."""

import pandas as pd
import pytest

from flywheel.monitoring.windows import (
    Window,
    WindowError,
    baseline_window,
    in_window,
    newest_ms,
    source_window,
    trailing_days,
)

HOUR = 3_600_000
#: The simulated history (January 2026) and the live traffic's wall clock (December 2026).
SIMULATED = pd.Series([1_767_571_200_000 + i * HOUR for i in range(48)])
LIVE = pd.Series([1_796_256_000_000 + i * 1_000 for i in range(600)])


def test_a_duration_ends_just_after_each_sources_newest_record() -> None:
    events = source_window("1d", newest_ms(SIMULATED))
    predictions = source_window("5m", newest_ms(LIVE))
    assert events == Window(int(SIMULATED.max()) + 1 - 24 * HOUR, int(SIMULATED.max()) + 1)
    assert predictions == Window(int(LIVE.max()) + 1 - 300_000, int(LIVE.max()) + 1)
    assert in_window(SIMULATED, events).sum() == 24
    assert in_window(LIVE, predictions).sum() == 300


def test_a_window_on_one_clock_finds_nothing_on_the_other() -> None:
    simulated_days = source_window("2026-01-05T00:00/2026-01-07T00:00", newest_ms(LIVE))
    assert in_window(SIMULATED, simulated_days).sum() == 48
    assert in_window(LIVE, simulated_days).sum() == 0


def test_the_baseline_is_the_window_before_or_the_one_named() -> None:
    window = Window(10 * HOUR, 12 * HOUR)
    assert baseline_window(window) == Window(8 * HOUR, 10 * HOUR)
    named = baseline_window(window, "1970-01-01T01:00/1970-01-01T03:00", newest_ms=12 * HOUR)
    assert named == Window(HOUR, 3 * HOUR)
    assert baseline_window(window, "30m", newest_ms=12 * HOUR - 1) == Window(11 * HOUR + 30 * 60_000, 12 * HOUR)


def test_an_empty_source_has_no_clock_and_a_bad_spec_is_an_error() -> None:
    assert newest_ms(pd.Series([], dtype="int64")) is None
    assert source_window("1h", None) == Window(-HOUR, 0)
    with pytest.raises(WindowError):
        source_window("2026-01-07/2026-01-05", 0)


def test_a_retraining_window_covers_the_last_days_and_at_least_two() -> None:
    day = 24 * HOUR
    assert trailing_days(10 * day, 3.0) == Window(7 * day, 10 * day)
    assert trailing_days(10 * day, 1.0) == Window(8 * day, 10 * day)
