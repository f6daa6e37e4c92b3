"""The business rules: exact expected lists."""

import pytest

from flywheel.serving.rules import RuleLimits, apply_rules, drop_watched


def _apply(items, scores, genres, creators, new=None, watched=(), k=3, per_genre=1, per_creator=2):
    return apply_rules(
        items,
        scores,
        genres=genres,
        creators=creators,
        new_release=new or [False] * len(items),
        watched=set(watched),
        limits=RuleLimits(k, per_genre, per_creator),
    )


def test_drop_watched_keeps_order_of_the_rest() -> None:
    assert drop_watched(["a", "b", "c", "d"], {"b", "d"}) == [0, 2]


def test_watched_titles_never_come_back_even_when_the_list_is_short() -> None:
    chosen = _apply(["a", "b", "c"], [3.0, 2.0, 1.0], ["x", "y", "z"], ["", "", ""], watched=["a", "c"], k=3)
    assert chosen == [1]


def test_genre_cap_skips_the_second_title_of_a_genre_best_first() -> None:
    items = ["a", "b", "c", "d"]
    chosen = _apply(items, [4.0, 3.0, 2.0, 1.0], ["drama", "drama", "comedy", "news"], ["p", "q", "r", "s"])
    assert [items[i] for i in chosen] == ["a", "c", "d"]


def test_creator_cap_counts_across_genres() -> None:
    items = ["a", "b", "c", "d"]
    chosen = _apply(
        items, [4.0, 3.0, 2.0, 1.0], ["g1", "g2", "g3", "g4"], ["same", "same", "same", "other"], per_genre=5
    )
    assert [items[i] for i in chosen] == ["a", "b", "d"]


def test_new_releases_are_exempt_from_the_caps() -> None:
    items = ["a", "b", "c", "d"]
    chosen = _apply(
        items, [4.0, 3.0, 2.0, 1.0], ["drama"] * 4, ["p", "q", "r", "s"], new=[False, True, False, False], k=3
    )
    # b is a second drama but new: kept; c and d are capped and only fill the list
    assert [items[i] for i in chosen] == ["a", "b", "c"]


def test_caps_relax_to_fill_k_with_the_best_capped_titles_in_score_order() -> None:
    items = ["a", "b", "c", "d"]
    chosen = _apply(items, [4.0, 3.0, 2.0, 1.0], ["drama", "drama", "drama", "news"], ["p", "q", "r", "s"], k=3)
    assert [items[i] for i in chosen] == ["a", "b", "d"]


def test_empty_genre_and_creator_are_never_capped() -> None:
    chosen = _apply(["a", "b", "c"], [3.0, 2.0, 1.0], ["", "", ""], ["", "", ""], per_genre=1, per_creator=1)
    assert chosen == [0, 1, 2]


def test_mismatched_lengths_are_an_error() -> None:
    with pytest.raises(ValueError, match="same length"):
        _apply(["a", "b"], [1.0], ["x", "y"], ["", ""])
