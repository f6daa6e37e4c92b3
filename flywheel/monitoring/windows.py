"""Window arithmetic of the monitoring jobs: what `--window 1h` or `START/END` covers.

Every source is windowed on its own clock: a duration ends at the source's newest record, and
the baseline of a window is the window just before it on the same clock. The prediction log is
stamped by the model server's clock and the event stream by the clients', so a window of one
source is never applied to the other (the loop's simulated history and its live traffic differ
by months).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


class WindowError(ValueError):
    """A window specification cannot be read; the message says what is expected."""


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open interval of event time, [start_ms, end_ms)."""

    start_ms: int
    end_ms: int

    @property
    def hours(self) -> float:
        """Length in hours."""
        return (self.end_ms - self.start_ms) / 3_600_000

    @property
    def label(self) -> str:
        """A file-name-safe name, e.g. ``20260105T000000-20260105T010000``."""

        def stamp(ms: int) -> str:
            return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y%m%dT%H%M%S")

        return f"{stamp(self.start_ms)}-{stamp(self.end_ms)}"

    def contains(self, timestamp_ms: int) -> bool:
        """True when ``timestamp_ms`` lies in the window."""
        return self.start_ms <= timestamp_ms < self.end_ms


def duration_ms(text: str) -> int:
    """``15m`` -> 900000. Units: s, m, h, d.

    Raises:
        WindowError: Not a positive duration.
    """
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise WindowError(f"window {text!r}: expected a duration such as 15m, 1h, 24h, 7d, or START/END")
    return int(float(match.group(1)) * _UNIT_MS[match.group(2)])


def _instant_ms(text: str) -> int:
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError) as exc:
        raise WindowError(f"window bound {text!r} is not an ISO time") from exc
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value // 1_000_000)


def parse_window(spec: str, *, now_ms: int) -> Window:
    """The window a specification names.

    Args:
        spec: A duration back from ``now_ms`` (``1h``) or ``START/END`` (ISO times, UTC when naive).
        now_ms: The end of a duration window (the newest record's time, or the clock).

    Raises:
        WindowError: The specification is malformed or its end is not after its start.
    """
    if "/" in spec:
        start_text, end_text = spec.split("/", 1)
        window = Window(_instant_ms(start_text.strip()), _instant_ms(end_text.strip()))
    else:
        window = Window(now_ms - duration_ms(spec), now_ms)
    if window.end_ms <= window.start_ms:
        raise WindowError(f"window {spec!r}: the end must be after the start")
    return window


def in_window(timestamps_ms: pd.Series, window: Window) -> pd.Series:
    """Boolean mask of the timestamps inside ``window``."""
    return (timestamps_ms >= window.start_ms) & (timestamps_ms < window.end_ms)


def source_window(spec: str, newest_ms: int | None) -> Window:
    """The window ``spec`` names on a source's own clock.

    Args:
        spec: A duration (ending just after the source's newest record) or ``START/END``.
        newest_ms: The source's newest timestamp (None: an empty source; a duration then ends at 0).

    Raises:
        WindowError: The specification is malformed.
    """
    return parse_window(spec, now_ms=0 if newest_ms is None else newest_ms + 1)


def baseline_window(window: Window, spec: str | None = None, *, newest_ms: int | None = None) -> Window:
    """The window a source's current window is compared with: ``spec`` when given (on the same
    clock as ``window``), else the window of the same length just before it."""
    if spec:
        return source_window(spec, newest_ms)
    return Window(window.start_ms - (window.end_ms - window.start_ms), window.start_ms)


def newest_ms(timestamps_ms: pd.Series) -> int | None:
    """The newest timestamp of a source (None when it has none)."""
    return None if timestamps_ms.empty else int(timestamps_ms.max())


def trailing_days(end_ms: int, days: float, *, min_days: float = 2.0) -> Window:
    """The last ``days`` (at least ``min_days``) before ``end_ms``: a retraining's window, long
    enough to hold the days after a shift and a few before it."""
    return Window(end_ms - int(max(days, min_days) * _UNIT_MS["d"]), end_ms)
