"""Synthetic event frames for the experiment tests (pure numpy/pandas, no simulator)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from flywheel.experiments.metrics import DAY_MS, EVENT_COLUMNS

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def event_frame(
    n_users: int,
    *,
    experiment_id: str = "exp",
    variants: tuple[str, ...] = ("control", "treatment"),
    click_lift: float = 0.0,
    watch_lift: float = 0.0,
    days: int = 7,
    start_day: int = 3,
    seed: int = 0,
    base_ctr: float = 0.1,
) -> pd.DataFrame:
    """Events of ``n_users`` users over ``days`` days; the experiment runs from ``start_day``.

    Each user has a persistent propensity (impressions per day, click-through, watch time), so
    the pre-period predicts the post-period, as on a real platform. The treatment multiplies
    the click probability by ``1 + click_lift`` and watch time by ``1 + watch_lift``.
    """
    rng = np.random.default_rng(seed)
    users = np.array([f"u{i}" for i in range(n_users)])
    arm = rng.integers(0, len(variants), n_users)
    treated = arm > 0
    device = rng.choice(np.array(["tv", "mobile", "web"]), n_users, p=[0.3, 0.5, 0.2])
    rate = rng.gamma(2.0, 3.0, n_users)  # impressions per day
    ctr = np.clip(rng.beta(2.0, 2.0 / base_ctr - 2.0, n_users), 0, 0.9)
    watch = rng.lognormal(6.0, 1.0, n_users)  # seconds per click
    frames = []
    for day in range(days):
        live = day >= start_day
        n_imp = rng.poisson(rate)
        p = np.clip(ctr * np.where(live & treated, 1 + click_lift, 1.0), 0, 1)
        n_click = rng.binomial(n_imp, p)
        for kind, counts in (("impression", n_imp), ("click", n_click), ("playback.stopped", n_click)):
            idx = np.repeat(np.arange(n_users), counts)
            if idx.size == 0:
                continue
            ts = T0_MS + day * DAY_MS + rng.integers(0, DAY_MS, idx.size)
            ws = (
                watch[idx] * rng.exponential(1.0, idx.size)
                * np.where(live & treated[idx], 1 + watch_lift, 1.0)
                if kind == "playback.stopped"
                else np.full(idx.size, np.nan)
            )  # fmt: skip
            frames.append(
                pd.DataFrame(
                    {
                        "user_id": users[idx],
                        "session_id": [f"s{u}-{day}" for u in idx],
                        "event_type": kind,
                        "timestamp_ms": ts,
                        "watch_seconds": ws,
                        "experiment_id": experiment_id if live else None,
                        "variant": np.array(variants)[arm[idx]] if live else None,
                        "device_type": device[idx],
                        "content_id": None,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)[list(EVENT_COLUMNS)]
