"""The accounting of a run."""

from __future__ import annotations

from flywheel.stream.reconcile import Counts, describe, describe_run, merge_counts, since


def test_counts_balance_and_merge() -> None:
    a = Counts(received=10, processed=6, dlq={"malformed_json": 1, "wrong_type": 1}, late=1, duplicates=1)
    b = Counts(received=5, processed=4, dlq={"wrong_type": 1}, late=0, duplicates=0, late_allowed=2)
    total = merge_counts([a, b])
    assert total.to_dict() == {
        "received": 15,
        "processed": 10,
        "dlq": 3,
        "dlq_by_code": {"malformed_json": 1, "wrong_type": 2},
        "late": 1,
        "duplicates": 1,
        "late_allowed": 2,
        "balanced": True,
    }
    assert Counts.from_dict(total.to_dict()) == total
    assert describe(total) == (
        "in 15 = processed 10 + dlq 3 + late 1 + duplicates 1 (balanced); dlq by code: malformed_json 1, wrong_type 2"
    )


def test_a_lost_event_unbalances() -> None:
    counts = Counts(received=3, processed=1, late=1)
    assert not counts.balanced
    assert "UNBALANCED by 1" in describe(counts)


def test_what_a_run_read_is_the_difference_of_the_totals() -> None:
    before = Counts(received=10, processed=7, dlq={"malformed_json": 1}, late=1, duplicates=1, late_allowed=1)
    after = Counts(
        received=17, processed=11, dlq={"malformed_json": 1, "wrong_type": 1}, late=2, duplicates=2, late_allowed=1
    )
    run = since(after, before)
    assert run == Counts(received=7, processed=4, dlq={"wrong_type": 1}, late=1, duplicates=1, late_allowed=0)
    assert run.balanced
    assert describe_run(run, after) == (
        "this run read 7 record(s): processed 4, dlq 1, late 1, duplicates 1\n"
        "totals since the first run: in 17 = processed 11 + dlq 2 + late 2 + duplicates 2 (balanced); "
        "dlq by code: malformed_json 1, wrong_type 1"
    )
    assert since(after, after).received == 0
