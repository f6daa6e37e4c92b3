"""Exact sliding-window sums."""

from __future__ import annotations

from flywheel.stream.windows import SlidingSum

H = 3_600_000


def test_total_counts_the_half_open_window_and_takes_late_values() -> None:
    s = SlidingSum()
    for ts in (0, H, 2 * H - 1, 2 * H):
        s.add(ts)
    s.add(H + 5, 2.0)  # out of order
    assert s.stamps == [(0, 1.0), (H, 1.0), (H + 5, 2.0), (2 * H - 1, 1.0), (2 * H, 1.0)]
    assert s.total(2 * H, H) == 4.0  # [H, 2H): H, H+5 (2.0), 2H-1
    assert s.total(2 * H + 1, H) == 4.0  # (H, 2H]: H+5, 2H-1, 2H
    s.prune(H + 1)
    assert len(s) == 3
