"""Point-in-time watch history, synopsis hashing and the spec round trip."""

import numpy as np
import pandas as pd

from flywheel.models.encoding import FeatureSpec, fit_spec, synopsis_token_ids, watch_history


def test_watch_history_is_strictly_before_and_most_recent_first() -> None:
    ts = pd.to_datetime(["2026-11-01 10:00", "2026-11-01 11:00", "2026-11-01 12:00", "2026-11-01 12:00"], utc=True)
    frame = pd.DataFrame(
        {
            "user_id": ["u", "u", "u", "u"],
            "content_id": ["a", "b", "c", "d"],
            "event_timestamp": ts,
            "watch_50": [1, 0, 1, 1],
        }
    )
    got = watch_history(frame, np.array(["u", "u", "u", "v"]), ts[[0, 1, 3, 3]].to_numpy(), length=5)
    # at 10:00 nothing before; at 11:00 only a; at 12:00 a (b was not watched; c, d are simultaneous)
    assert got == [[], ["a"], ["a"], []]
    later = watch_history(frame, np.array(["u"]), pd.to_datetime(["2026-11-02"], utc=True).to_numpy(), length=2)
    assert later == [["d", "c"]] or later == [["c", "d"]]


def test_synopsis_hashing_is_stable_and_padded() -> None:
    ids = synopsis_token_ids(["Space Opera, space!", None], buckets=100, length=4)
    assert ids.shape == (2, 4)
    assert ids[0, 0] == ids[0, 2] and ids[0, 3] == 0 and (ids[1] == 0).all()
    assert (ids[0, :3] >= 1).all() and (ids[0, :3] <= 100).all()


def test_spec_json_round_trip(split, catalog) -> None:
    spec = fit_spec(split.train, catalog, synopsis_buckets=64, synopsis_tokens=8, history_length=10)
    assert FeatureSpec.from_json(spec.to_json()) == spec
    assert spec.ranker_dense_dim == len(spec.dense_names) + spec.user_vector_dim + len(spec.genres)
