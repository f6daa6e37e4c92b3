"""The prediction log: records exactly per the contract, sampling by request id, read back."""

import time

import orjson
import pytest

from flywheel.events.local_log import LocalEventLog
from flywheel.serving.prediction_log import PredictionRecord, PredictionWriter, read_predictions, sampled

CONTRACT_FIELDS = {
    "request_id",
    "timestamp_ms",
    "user_id",
    "model_name",
    "model_version",
    "variant",
    "rollout_id",
    "features",
    "items",
    "scores",
    "latency_ms",
    "error",
}


def _record(request_id: str, user: str = "u1", variant: str = "champion") -> PredictionRecord:
    return PredictionRecord(
        request_id=request_id,
        timestamp_ms=1_767_000_000_000,
        user_id=user,
        model_name="recommender",
        model_version="3",
        variant=variant,  # type: ignore[arg-type]
        rollout_id="r-1",
        features={"user_total_watch_hours_7d": 1.5, "device_type": "tv"},
        items=["c1", "c2"],
        scores=[0.5, 0.25],
        latency_ms=3.5,
    )


def test_the_json_has_exactly_the_contract_fields() -> None:
    raw = orjson.loads(_record("r1").to_json())
    assert set(raw) == CONTRACT_FIELDS
    assert raw["items"] == ["c1", "c2"] and raw["scores"] == [0.5, 0.25] and raw["error"] is None
    assert PredictionRecord.from_json(_record("r1").to_json()) == _record("r1")


def test_a_foreign_record_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="missing"):
        PredictionRecord.from_json(b'{"request_id": "x"}')


def test_sampling_is_by_request_id_and_near_the_rate() -> None:
    ids = [f"req-{i}" for i in range(5000)]
    kept = [i for i in ids if sampled(i, 0.2)]
    assert 0.17 < len(kept) / len(ids) < 0.23
    assert kept == [i for i in ids if sampled(i, 0.2)]
    assert all(sampled(i, 1.0) for i in ids[:50]) and not any(sampled(i, 0.0) for i in ids[:50])


def test_records_go_to_the_topic_keyed_by_user_and_read_back(tmp_path) -> None:
    log = LocalEventLog(tmp_path / "log", partitions=4)
    log.create_topic("predictions")
    writer = PredictionWriter(log.producer("predictions"), sample_rate=1.0, flush_ms=20)
    records = [_record(f"r{i}", user=f"u{i % 5}") for i in range(30)] + [_record("r0", variant="shadow")]
    for record in records:
        assert writer.log(record)
    writer.close()
    back = list(read_predictions(log, "predictions"))
    assert sorted(back, key=lambda r: (r.request_id, r.variant)) == sorted(
        records, key=lambda r: (r.request_id, r.variant)
    )
    by_partition = {}
    for partition in range(4):
        for rec in log.read("predictions", partition, 0):
            by_partition.setdefault(rec.key, set()).add(partition)
    assert all(len(parts) == 1 for parts in by_partition.values())


def test_the_writer_batches_records_until_its_flush_interval(tmp_path) -> None:
    log = LocalEventLog(tmp_path / "log", partitions=2)
    log.create_topic("predictions")
    writer = PredictionWriter(log.producer("predictions"), flush_ms=60_000)  # the thread waits a minute
    records = [_record(f"r{i}") for i in range(20)]
    for record in records:
        assert writer.log(record)
    time.sleep(0.2)
    assert writer.written == 0  # queued: no write, no wake-up per record
    writer.close()  # writes what is queued
    assert writer.written == 20
    assert sorted(r.request_id for r in read_predictions(log, "predictions")) == sorted(r.request_id for r in records)


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path) -> None:
    log = LocalEventLog(tmp_path / "log", partitions=1)
    log.create_topic("predictions")
    writer = PredictionWriter(log.producer("predictions"), flush_ms=60_000, max_queue=3)
    kept = [writer.log(_record(f"r{i}")) for i in range(5)]
    writer.close()
    assert kept == [True, True, True, False, False]
    assert writer.dropped == 2 and writer.written == 3


def test_records_logged_between_flushes_reach_the_topic_without_close(tmp_path) -> None:
    log = LocalEventLog(tmp_path / "log", partitions=1)
    log.create_topic("predictions")
    writer = PredictionWriter(log.producer("predictions"), flush_ms=20)
    try:
        assert writer.log(_record("r1"))
        deadline, found = time.monotonic() + 5, []
        while not found and time.monotonic() < deadline:
            time.sleep(0.02)
            found = [r.request_id for r in read_predictions(log, "predictions", timeout_s=0.5)]
        assert found == ["r1"]
    finally:
        writer.close()
