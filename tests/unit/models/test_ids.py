"""Id embeddings are chosen by validation: every choice is scored, the best kept and recorded."""

import math

import pandas as pd
import pytest

from flywheel.models.bundle import fit_feature_spec
from flywheel.models.dataset import is_relevant, relevance_label
from flywheel.models.ids import ID_CHOICES, VALIDATION_K, fixed_spec, retrieval_ndcg


def test_validation_scores_every_choice_and_keeps_the_best(split, catalog, small_config) -> None:
    spec = fit_feature_spec(split.train, catalog, small_config)
    selection = spec.id_selection
    assert selection["validated"] == 1.0
    scores = [selection[f"ndcg@{VALIDATION_K}.{name}"] for name, _, _ in ID_CHOICES]
    assert all(0.0 <= s <= 1.0 for s in scores if not math.isnan(s))
    chosen = int(selection["chosen"])
    assert scores[chosen] == max(scores)
    assert scores[chosen] > max((s for s in scores[:chosen]), default=-1.0)  # a tie keeps the simpler
    _, users, items = ID_CHOICES[chosen]
    assert bool(spec.users) == users and bool(spec.contents) == items


def test_a_fixed_choice_is_not_validated(split, catalog, small_config) -> None:
    for name, users, items in ID_CHOICES:
        spec = fit_feature_spec(split.train, catalog, small_config.model_copy(update={"id_embeddings": name}))
        assert spec.id_selection == {}
        assert bool(spec.users) == users and bool(spec.contents) == items


def test_a_logged_window_is_validated_on_the_titles_each_user_was_shown(split, catalog, small_config) -> None:
    """Where the window logs impressions, the choice is scored as the evaluation scores it: each
    user's shown titles re-ranked. A holdout whose users were shown only what they watched is then
    ranked perfectly whatever the towers learnt; over the whole catalog it is not."""
    holdout = split.holdout
    relevance = relevance_label(holdout, small_config.evaluation)
    watched = holdout[is_relevant(holdout, relevance)]
    unjudged = holdout[~holdout["user_id"].isin(watched["user_id"]) & (holdout["click"] <= 0)].head(1)
    assert len(watched) and len(unjudged)  # an impression nobody clicked: the window logs impressions
    only_watched = pd.concat([watched, unjudged], ignore_index=True)
    spec = fixed_spec(split.train, catalog, small_config, "none")
    assert retrieval_ndcg(spec, split.train, only_watched, catalog, small_config) == pytest.approx(1.0)
    imported = only_watched[only_watched["click"] > 0]  # every row a click: no impressions, the catalog view
    assert retrieval_ndcg(spec, split.train, imported, catalog, small_config) < 0.9
