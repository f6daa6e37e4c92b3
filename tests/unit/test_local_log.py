"""Semantics of the local event log: placement, order per key, offsets, checkpoints, torn writes."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flywheel.events.local_log import INDEX_INTERVAL, LocalEventLog, LogError, encode_frame
from flywheel.events.log import partition_for


def write(log: LocalEventLog, messages: list[tuple[str, bytes]], topic: str = "events") -> None:
    producer = log.producer(topic)
    producer.send_many((k, v, 1_700_000_000_000 + i) for i, (k, v) in enumerate(messages))
    producer.flush()


def read_all(log: LocalEventLog, topic: str = "events", group: str = "reader") -> list:
    consumer = log.consumer(topic, group)
    out = []
    while batch := consumer.poll(500):
        out.extend(batch)
    return out


def test_partition_is_crc32_of_the_key_mod_n() -> None:
    import zlib

    assert partition_for("u000123", 8) == zlib.crc32(b"u000123") % 8
    assert partition_for(None, 8) == 0


def test_records_keep_order_per_key_and_offsets_are_dense(tmp_path: Path) -> None:
    log = LocalEventLog(tmp_path, partitions=4)
    messages = [(f"u{i % 37}", f"{i}".encode()) for i in range(5000)]
    write(log, messages)
    records = read_all(log)
    assert len(records) == 5000
    by_partition: dict[int, list[int]] = defaultdict(list)
    by_key: dict[bytes, list[int]] = defaultdict(list)
    for r in records:
        assert r.partition == partition_for(r.key, 4)
        by_partition[r.partition].append(r.offset)
        by_key[r.key].append(int(r.value))
    for offsets in by_partition.values():
        assert offsets == list(range(len(offsets)))
    for values in by_key.values():
        assert values == sorted(values)
    assert sum(log.end_offsets("events").values()) == 5000
    log.close()


def test_reading_from_any_offset_uses_the_index(tmp_path: Path) -> None:
    log = LocalEventLog(tmp_path, partitions=1)
    write(log, [("k", f"{i}".encode()) for i in range(3 * INDEX_INTERVAL + 10)])
    for start in (0, 1, INDEX_INTERVAL - 1, INDEX_INTERVAL, 2 * INDEX_INTERVAL + 5, 3 * INDEX_INTERVAL + 9):
        records = log.read("events", 0, start, max_records=3)
        assert [r.offset for r in records] == list(range(start, min(start + 3, 3 * INDEX_INTERVAL + 10)))
        assert int(records[0].value) == start
    assert log.read("events", 0, 3 * INDEX_INTERVAL + 10) == []


def test_a_consumer_resumes_from_its_committed_checkpoint(tmp_path: Path) -> None:
    log = LocalEventLog(tmp_path, partitions=3)
    write(log, [(f"u{i}", f"{i}".encode()) for i in range(900)])
    first = log.consumer("events", "features")
    seen = first.poll(400)
    first.commit()
    first.poll(100)  # read but never committed: must be read again after a restart
    first.close()
    again = log.consumer("events", "features")
    rest = []
    while batch := again.poll(1000):
        rest.extend(batch)
    assert len(seen) + len(rest) == 900
    assert {r.value for r in seen}.isdisjoint({r.value for r in rest})
    # another group starts from the beginning
    assert len(read_all(log, group="other")) == 900


def test_lag_counts_records_behind_the_head(tmp_path: Path) -> None:
    log = LocalEventLog(tmp_path, partitions=2)
    write(log, [(f"u{i}", b"x") for i in range(100)])
    consumer = log.consumer("events", "g")
    assert sum(consumer.lag().values()) == 100
    consumer.poll(30)
    assert sum(consumer.lag().values()) == 70


def test_a_torn_last_record_is_never_half_read_and_is_cut_on_reopen(tmp_path: Path) -> None:
    log = LocalEventLog(tmp_path, partitions=1)
    write(log, [("k", f"value-{i}".encode()) for i in range(10)])
    log.close()
    path = tmp_path / "events" / "p00000.log"
    frame = encode_frame(b"k", b"value-torn-and-long", 1)
    with path.open("ab") as fh:  # a crash halfway through the 11th write
        fh.write(frame[: len(frame) // 2])
    reader = LocalEventLog(tmp_path, partitions=1)
    records = reader.read("events", 0, 0, max_records=100)
    assert [r.value for r in records] == [f"value-{i}".encode() for i in range(10)]
    assert reader.end_offsets("events") == {0: 10}
    size_with_tear = path.stat().st_size
    # the next writer truncates the tear and appends after the last good record
    writer = LocalEventLog(tmp_path, partitions=1)
    write(writer, [("k", b"after-crash")])
    assert path.stat().st_size < size_with_tear + len(frame)
    values = [r.value for r in writer.read("events", 0, 0, max_records=100)]
    assert values[-1] == b"after-crash" and len(values) == 11
    writer.close()


def test_a_corrupted_tail_checksum_stops_the_reader(tmp_path: Path) -> None:
    log = LocalEventLog(tmp_path, partitions=1)
    write(log, [("k", b"a" * 50) for _ in range(3)])
    log.close()
    path = tmp_path / "events" / "p00000.log"
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF  # flip a byte inside the last record's value
    path.write_bytes(bytes(raw))
    assert len(LocalEventLog(tmp_path).read("events", 0, 0)) == 2


@settings(max_examples=40, deadline=None)
@given(cut=st.integers(min_value=0, max_value=400))
def test_any_truncation_point_yields_a_prefix_of_whole_records(
    tmp_path_factory: pytest.TempPathFactory, cut: int
) -> None:
    root = tmp_path_factory.mktemp("torn")
    log = LocalEventLog(root, partitions=1)
    values = [f"record-{i:03d}".encode() * (1 + i % 3) for i in range(12)]
    write(log, [("k", v) for v in values])
    log.close()
    path = root / "events" / "p00000.log"
    size = path.stat().st_size
    os.truncate(path, max(0, size - cut))
    got = [r.value for r in LocalEventLog(root).read("events", 0, 0, 100)]
    assert got == values[: len(got)]


def test_a_second_writer_process_is_refused(tmp_path: Path) -> None:
    first = LocalEventLog(tmp_path)
    first.producer("events")
    import subprocess
    import sys

    code = (
        "from flywheel.events.local_log import LocalEventLog, LogError\n"
        f"try:\n    LocalEventLog({str(tmp_path)!r}).producer('events')\n"
        "except LogError as e:\n    print('refused', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "refused" in out and "another process" in out
    first.close()


def test_unknown_topic_and_partition_errors(tmp_path: Path) -> None:
    log = LocalEventLog(tmp_path, partitions=2)
    with pytest.raises(LogError, match="does not exist"):
        log.consumer("nope", "g")
    log.create_topic("events")
    with pytest.raises(LogError, match="partitions 0..1"):
        log.consumer("events", "g", partitions=[5])


def test_large_values_and_unkeyed_messages(tmp_path: Path) -> None:
    log = LocalEventLog(tmp_path, partitions=2)
    big = os.urandom(3 << 20)  # larger than one read chunk
    producer = log.producer("blobs")
    producer.send(None, big)
    producer.send("k", b"small")
    producer.flush()
    values = [r.value for r in read_all(log, "blobs")]
    assert big in values and b"small" in values


def test_a_reader_never_sees_a_half_written_topic(tmp_path: Path) -> None:
    """Another process (a test, a monitor) reads the topics while the stream creates them."""
    import threading

    writer, reader = LocalEventLog(tmp_path, partitions=3), LocalEventLog(tmp_path, partitions=3)
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                for topic in reader.topics():
                    assert reader.topic_partitions(topic) == 3
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for n in range(400):
            writer.create_topic(f"t{n}")
    finally:
        done.set()
        thread.join()
    assert not errors, errors[0]
    assert len(reader.topics()) == 400
    assert not [p for p in tmp_path.rglob(".topic.json.*")]  # no temporary file left
