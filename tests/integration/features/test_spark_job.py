"""The Spark batch job computes exactly what the pure formulas compute, on the same events."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flywheel.features import formulas as f
from flywheel.features.aggregates import WindowSpec, content_feature_rows, user_feature_rows
from flywheel.features.sources import flatten_events, write_spark_inputs
from flywheel.features.spark_job import JobInputs, run_job
from tests.unit.features.factory import CATALOG, MIN, T0, USERS, event, scenario

pytestmark = pytest.mark.integration

VOCAB = f.GenreVocabulary(("comedy", "crime", "drama", "kids"))
SPEC = WindowSpec(short_days=7, long_days=30, session_gap_ms=30 * MIN, skip_threshold_seconds=30.0)


def _catalog_frame() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "content_id": m.content_id,
                "genres": list(m.genres),
                "creator_id": m.creator_id,
                "duration_seconds": m.duration_seconds,
                "release_ts_ms": m.release_ts_ms,
            }
            for m in CATALOG.values()
        ]
    )


def _users_frame() -> pd.DataFrame:
    rows = [{"user_id": u.user_id, "tier": u.tier, "signup_ts_ms": u.signup_ts_ms} for u in USERS.values()]
    rows.append({"user_id": "u000009", "tier": "family", "signup_ts_ms": T0})  # a user with no events
    return pd.DataFrame(rows)


def _events() -> list[dict[str, Any]]:
    """The scenario, plus activity spread over 40 days so that windows fill and empty."""
    extra = []
    for day in range(0, 40, 3):
        ts = T0 + day * f.DAY_MS + (day % 24) * 3_600_000
        extra += [
            event("impression", ts, user="u000003", content="c000002", position=day % 5, propensity=0.3),
            event("playback.started", ts + MIN, user="u000003", content="c000002", device="console"),
            event(
                "playback.stopped",
                ts + 2 * MIN,
                user="u000003",
                content="c000002",
                watch=7.5 * day,
                position_s=7.5 * day,
            ),
            event("like", ts + 3 * MIN, user="u000003", content="c000001", rating=float(day % 5)),
        ]
    # session boundaries: a gap of exactly 30 min stays in the session, 30 min + 1 ms splits it
    for offset in (0, 30 * MIN, 60 * MIN + 1, 61 * MIN + 1):
        extra.append(event("search", T0 + 5 * f.DAY_MS + offset, user="u000004", content=None, query="q"))
    dup = scenario()[3]
    return [*scenario(), *extra, dict(dup)]  # a duplicate event_id, dropped by both paths


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _compare(spark_frame: pd.DataFrame, expected: list[dict[str, Any]], key: str) -> None:
    got = {(r[key], r["event_timestamp"]): r for r in spark_frame.to_dict("records")}
    want = {(r[key], r["event_timestamp"]): r for r in expected}
    assert sorted(got) == sorted(want)
    for k, row in want.items():
        for name, value in row.items():
            actual = got[k][name]
            actual = list(actual) if hasattr(actual, "__len__") and not isinstance(actual, str) else actual
            assert _same(actual, value), f"{k} {name}: spark {actual!r} != pure {value!r}"


def test_spark_features_equal_the_pure_formulas(spark, tmp_path: Path) -> None:
    events = _events()
    unique = list({e["event_id"]: e for e in events}.values())
    cutoff = T0 + 45 * f.DAY_MS + 123
    ev, cat, users = write_spark_inputs(flatten_events(events), _catalog_frame(), _users_frame(), tmp_path / "in")
    counts = run_job(spark, JobInputs(ev, cat, users), tmp_path / "out", VOCAB, SPEC, cutoff)

    user_rows = pd.read_parquet(tmp_path / "out" / "user_features.parquet")
    content_rows = pd.read_parquet(tmp_path / "out" / "content_features.parquet")
    assert str(user_rows["event_timestamp"].dtype).startswith("datetime64")
    for frame in (user_rows, content_rows):
        frame["event_timestamp"] = (frame["event_timestamp"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(
            milliseconds=1
        )

    profiles = {**USERS, "u000009": f.UserProfile("u000009", "family", T0)}
    expected_users = user_feature_rows(unique, CATALOG, profiles, VOCAB, SPEC, cutoff)
    expected_content = content_feature_rows(unique, CATALOG, VOCAB, SPEC, cutoff)
    assert counts == {"user_features": len(expected_users), "content_features": len(expected_content)}
    _compare(user_rows, expected_users, "user_id")
    _compare(content_rows, expected_content, "content_id")
    # every formula is exercised with non-trivial values somewhere
    for name, _ in f.USER_FEATURES:
        assert user_rows[name].astype(str).nunique() > 1, name
    for name, _ in f.CONTENT_FEATURES:
        assert content_rows[name].astype(str).nunique() > 1, name
