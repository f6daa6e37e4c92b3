"""Id embeddings are chosen by validation: every choice is scored, the best kept and recorded."""

import math

from flywheel.models.bundle import fit_feature_spec
from flywheel.models.ids import ID_CHOICES, VALIDATION_K


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
