"""The stream's features equal the batch reference (flywheel.features.aggregates) as of the same time."""

from __future__ import annotations

import math
import random

from flywheel.events.validation import EventValidator
from flywheel.features import formulas as f
from flywheel.features.aggregates import WindowSpec, content_feature_rows, user_feature_rows
from flywheel.stream.features import FeatureContext
from flywheel.stream.processor import (
    ContentShardState,
    PartitionState,
    StreamRules,
    emit_contents,
    emit_users,
    process_content,
    process_record,
)
from tests.unit.stream.events import HOUR, MIN, T0, event, record

CATALOG = {
    "c1": f.ContentMeta("c1", ("drama", "crime"), "k1", 3600.0, T0 - 10 * f.DAY_MS),
    "c2": f.ContentMeta("c2", ("comedy",), "k2", 1800.0, T0 - 100 * f.DAY_MS),
}
USERS = {"u1": f.UserProfile("u1", "premium", T0 - 50 * f.DAY_MS)}
VOCAB = f.GenreVocabulary(("comedy", "crime", "drama"))
LATENESS = 10 * MIN
KINDS = ["playback.started", "playback.stopped", "playback.completed", "impression", "search", "like"]


def _events(seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(600):
        ts = T0 + rng.randrange(0, 9 * f.DAY_MS)
        kind = rng.choice(KINDS)
        out.append(
            event(
                kind,
                ts,
                user=rng.choice(["u1", "u2", "u3"]),
                content=rng.choice(["c1", "c2", "c3"]),
                device=rng.choice(["tv", "mobile"]),
                watch=rng.uniform(0, 900) if kind in ("playback.stopped", "playback.completed") else None,
                position_s=rng.uniform(0, 120) if kind == "playback.stopped" else None,
                rating=rng.choice([None, 4.0]) if kind == "like" else None,
                query="q" if kind == "search" else None,
                event_id=f"00000000-0000-4000-8000-{i:012d}",
            )
        )
    out.sort(key=lambda e: e["timestamp_ms"])
    # deliver out of order within the allowed lateness: swap neighbours less than 10 min apart
    for i in range(1, len(out)):
        if out[i]["timestamp_ms"] - out[i - 1]["timestamp_ms"] < LATENESS and rng.random() < 0.5:
            out[i - 1], out[i] = out[i], out[i - 1]
    return out


def _same(a: dict, b: dict) -> None:
    assert a.keys() <= b.keys()
    for name, value in a.items():
        other = b[name]
        if isinstance(value, float):
            assert math.isclose(value, other, rel_tol=1e-9, abs_tol=1e-12), name
        elif isinstance(value, list) and value and isinstance(value[0], float):
            assert all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12) for x, y in zip(value, other, strict=True)), name
        else:
            assert value == other, name


def test_stream_features_equal_the_batch_reference() -> None:
    events = _events(7)
    cutoff = max(e["timestamp_ms"] for e in events) + HOUR
    ctx = FeatureContext(vocab=VOCAB, catalog=CATALOG, users=USERS, allowed_lateness_ms=LATENESS)
    rules = StreamRules(allowed_lateness_ms=LATENESS)
    state = PartitionState.empty(rules)
    shard = ContentShardState()
    out: list = []
    validator = EventValidator()
    for i, e in enumerate(events):
        process_record(state, record(e, i), validator=validator, rules=rules, ctx=ctx, out=out)
    assert state.counts.processed == len(events) and state.counts.late_allowed > 0
    for item in out:
        process_content(shard, item[1:], ctx, partition=0)
    stream_users = {r["user_id"]: r for r in emit_users(state, ctx, everyone=True, as_of_ms=cutoff)}
    stream_contents = {r["content_id"]: r for r in emit_contents(shard, ctx, everyone=True, as_of_ms=cutoff)}

    spec = WindowSpec()
    batch_users = {
        r["user_id"]: r
        for r in user_feature_rows(events, CATALOG, USERS, VOCAB, spec, cutoff)
        if r["event_timestamp"] == cutoff
    }
    batch_contents = {
        r["content_id"]: r
        for r in content_feature_rows(events, CATALOG, VOCAB, spec, cutoff)
        if r["event_timestamp"] == cutoff
    }
    assert sorted(stream_users) == ["u1", "u2", "u3"]
    assert sorted(stream_contents) == ["c1", "c2", "c3"]
    for user, row in stream_users.items():
        _same(batch_users[user], row)
    for content, row in stream_contents.items():
        _same(batch_contents[content], row)
    assert stream_users["u1"]["user_subscription_tier"] == "premium"
