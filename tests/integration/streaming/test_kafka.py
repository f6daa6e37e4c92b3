"""The dataflow over Kafka (a real Kafka-protocol broker) gives what it gives over the local log."""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pytest
from bytewax.testing import run_main

from flywheel.config import load_config
from flywheel.config.models import FlywheelConfig
from flywheel.config.streaming import StreamingConfig
from flywheel.events.kafka_log import KafkaEventLog, KafkaLogError
from flywheel.simulator.engine import simulate
from streaming import sources
from streaming.dataflow import build_flow
from streaming.settings import settings_from_config
from streaming.sinks import read_feature_table, written_after
from streaming.sources import check_kafka
from tests.integration.streaming.helpers import Run, write_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class _LagSpy:
    """Stands in for the lag gauge: remembers every value set, by (topic, partition)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], list[float]] = {}

    def labels(self, *, topic: str, partition: str) -> _LagSpy._Child:
        return _LagSpy._Child(self.values.setdefault((topic, partition), []))

    class _Child:
        def __init__(self, values: list[float]) -> None:
            self._values = values

        def set(self, value: float) -> None:
            self._values.append(value)


def _run(config: FlywheelConfig, folder: Path, batch_size: int = 1000) -> tuple[dict, dict]:
    streaming = StreamingConfig(
        recovery=False,
        report_path=folder / "report.json",
        features_table=folder / "features.sqlite",
        batch_size=batch_size,
    )
    run_main(build_flow(settings_from_config(config, streaming=streaming, as_of_end_ms=2_000_000_000_000)))
    return orjson.loads((folder / "report.json").read_bytes()), read_feature_table(folder / "features.sqlite")


def test_the_dataflow_over_kafka_equals_the_local_run(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = load_config(write_config(tmp_path / "local", users=150, partitions=4))
    suffix = uuid.uuid4().hex[:8]
    topics = local.event_log.topics.model_copy(
        update={"events": f"events-{suffix}", "dlq": f"events-{suffix}.dlq", "late": f"events-{suffix}.late"}
    )
    kafka = local.model_copy(
        update={
            "event_log": local.event_log.model_copy(
                update={
                    "backend": "kafka",
                    "topics": topics,
                    "kafka": local.event_log.kafka.model_copy(update={"bootstrap_servers": kafka_bootstrap}),
                }
            )
        }
    )
    log = KafkaEventLog(kafka.event_log.kafka, partitions=4)
    for name in (topics.events, topics.dlq, topics.late):
        log.create_topic(name, 4)
    written = simulate(kafka, log=log, ground_truth=False).events_written
    assert simulate(local, ground_truth=False).events_written == written
    check_kafka(kafka.event_log.kafka.bootstrap_servers, topics.events, timeout_s=10)

    spy = _LagSpy()
    monkeypatch.setattr(sources, "STREAM_CONSUMER_LAG", spy)
    # small batches: the first batch of each partition leaves most of it unread
    kafka_report, kafka_features = _run(kafka, tmp_path / "kafka", batch_size=50)
    local_report, local_features = _run(local, tmp_path / "local")
    assert kafka_report["received"] == written
    assert kafka_report == local_report
    assert kafka_features == local_features
    for p in range(4):
        values = spy.values.get((topics.events, str(p)), [])
        # the lag was measured while records were still unread, and was 0 once the partition was read
        assert any(value > 0 for value in values), f"partition {p}: no positive lag reported ({values})"
        assert values[-1] == 0, f"partition {p}: lag {values[-1]} at the end"


def test_check_kafka_fails_fast_without_a_broker() -> None:
    with pytest.raises(RuntimeError, match="not reachable"):
        check_kafka("127.0.0.1:1", "events", timeout_s=1)


def _kafka_run(folder: Path, bootstrap: str, events: str, users: int) -> Run:
    """A run over the broker's ``events`` topic writing DLQ and late topics of its own."""
    suffix = uuid.uuid4().hex[:8]
    write_config(
        folder,
        users=users,
        partitions=4,
        extra={
            "event_log": {
                "backend": "kafka",
                "partitions": 4,
                "kafka": {"bootstrap_servers": bootstrap},
                "local": {"path": str(folder / "log")},
                "topics": {"events": events, "dlq": f"dlq-{suffix}", "late": f"late-{suffix}"},
            }
        },
    )
    return Run(folder)


def _topic_values(run: Run, topic: str) -> list[bytes]:
    config = load_config(run.config)
    return list(written_after(KafkaEventLog(config.event_log.kafka), topic, {}))


def _dlq_written(log: KafkaEventLog, topic: str) -> int:
    try:
        return sum(log.end_offsets(topic).values())
    except KafkaLogError:  # not created yet
        return 0


def test_kills_of_a_two_process_cluster_over_kafka_give_the_uninterrupted_result(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    events = f"events-{uuid.uuid4().hex[:8]}"
    reference = _kafka_run(tmp_path / "reference", kafka_bootstrap, events, users=150)
    killed = _kafka_run(tmp_path / "killed", kafka_bootstrap, events, users=150)
    config = load_config(reference.config)
    log = KafkaEventLog(config.event_log.kafka, partitions=4)
    log.create_topic(events, 4)
    written = simulate(config, log=log, ground_truth=False).events_written
    reference.finish()
    expected = reference.report()
    assert expected["received"] == written and expected["balanced"]

    killed_topics = load_config(killed.config).event_log.topics
    rng = random.Random(15)
    kills = 0
    for _ in range(3):
        target = _dlq_written(log, killed_topics.dlq) + rng.randint(2, expected["dlq"] // 5)
        proc = killed.start("--processes", "2", "--batch-size", "50", "--snapshot-interval", "0.1")
        deadline = time.monotonic() + 90
        while _dlq_written(log, killed_topics.dlq) < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() is None:
            Run.kill(proc)
            kills += 1
        proc.communicate(timeout=30)
    assert kills >= 2, f"only {kills} kill(s) landed while the dataflow ran"
    killed.finish("--processes", "2")

    got = killed.report()
    run_keys = ("this_run", "run_summary")
    assert {k: v for k, v in got.items() if k not in run_keys} == {
        k: v for k, v in expected.items() if k not in run_keys
    }
    assert killed.features() == reference.features()
    reference_topics = config.event_log.topics
    for mine, theirs in ((killed_topics.dlq, reference_topics.dlq), (killed_topics.late, reference_topics.late)):
        values = _topic_values(killed, mine)
        assert Counter(values) == Counter(_topic_values(reference, theirs)), mine
        assert len(values) == len(set(values)), f"{mine} holds a record twice"
    assert len(_topic_values(killed, killed_topics.dlq)) == expected["dlq"] > 0
    assert len(_topic_values(killed, killed_topics.late)) == expected["late"] > 0
