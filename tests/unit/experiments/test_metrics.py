"""Per-unit metrics computed from a small hand-made event frame, exactly."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from flywheel.experiments.metrics import DAY_MS, events_frame, unit_metrics

H = 3_600_000
T = 1_767_225_600_000


def _ev(user: str, kind: str, t: int, *, session: str = "s", exp: str | None = None,
        variant: str | None = None, watch: float | None = None, device: str = "tv") -> dict:  # fmt: skip
    return {
        "user_id": user, "session_id": f"{user}-{session}", "event_type": kind, "timestamp_ms": t,
        "watch_seconds": watch, "context": {"experiment_id": exp, "variant": variant},
        "device": {"type": device, "os": "x", "app_version": "1"},
    }  # fmt: skip


@pytest.fixture
def frame() -> pd.DataFrame:
    on = {"exp": "e"}
    events = [
        # a: pre-period on day 0, exposed on day 1 in control, active again on day 2
        _ev("a", "impression", T + 1 * H, session="0"),
        _ev("a", "impression", T + 2 * H, session="0"),
        _ev("a", "click", T + 3 * H, session="0"),
        _ev("a", "playback.stopped", T + 4 * H, session="0", watch=600.0),
        _ev("a", "impression", T + DAY_MS + 10 * H, session="1", variant="control", **on),
        _ev("a", "click", T + DAY_MS + 11 * H, session="1", variant="control", **on),
        _ev("a", "playback.stopped", T + DAY_MS + 12 * H, session="1", watch=1800.0, variant="control", **on),
        _ev("a", "impression", T + 2 * DAY_MS + 11 * H, session="2", variant="control", **on),
        # b: exposed on day 1 in treatment on mobile, nothing afterwards
        _ev("b", "impression", T + DAY_MS, variant="treatment", device="mobile", **on),
        _ev("b", "impression", T + DAY_MS + H, variant="treatment", device="mobile", **on),
        # c: never exposed
        _ev("c", "impression", T + DAY_MS),
        # d: exposed too late for a full day-1 window before the data ends
        _ev("d", "impression", T + 2 * DAY_MS + 20 * H, variant="treatment", **on),
        # e: seen in both variants
        _ev("e", "impression", T + DAY_MS, variant="control", **on),
        _ev("e", "impression", T + DAY_MS + H, variant="treatment", **on),
        # the data ends here
        _ev("c", "impression", T + 3 * DAY_MS + 12 * H),
    ]  # fmt: skip
    return events_frame(events)


def test_unit_metrics_exact(frame: pd.DataFrame) -> None:
    units = unit_metrics(frame, "e", ["ctr", "day1_active"])
    assert sorted(units.index) == ["a", "b", "d", "e"]
    a, b = units.loc["a"], units.loc["b"]
    assert (a["variant"], a["stratum"], b["variant"], b["stratum"]) == ("control", "tv", "treatment", "mobile")
    assert (a["impressions"], a["clicks"], a["sessions"], a["active_days"]) == (2, 1, 2, 2)
    assert a["watch_hours"] == pytest.approx(0.5)
    assert (a["pre_impressions"], a["pre_clicks"], a["pre_sessions"]) == (2, 1, 1)
    assert a["pre_watch_hours"] == pytest.approx(600 / 3600)
    assert (b["impressions"], b["clicks"], b["watch_hours"], b["pre_impressions"]) == (2, 0, 0, 0)
    assert a["day1_active"] == 1.0 and b["day1_active"] == 0.0
    assert math.isnan(units.loc["d", "day1_active"])
    assert units["conflict"].tolist() == [False, False, False, True]
    assert units.loc["e", "variant"] == "control"  # the variant of the first exposure


def test_no_exposure_gives_an_empty_frame(frame: pd.DataFrame) -> None:
    assert unit_metrics(frame, "unknown", ["ctr"]).empty
