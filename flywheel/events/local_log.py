"""The embedded event log: a topic is a folder, a partition an append-only file.

Frame of one record (little-endian)::

    u32 body_length | u32 crc32(body) | body = i64 timestamp_ms | u16 key_length | key | value

``key_length`` 0xFFFF means "no key". A crash mid-write leaves a torn last frame: its length
runs past the end of the file or its checksum fails. Readers stop before it and never return a
half-written record; the next writer truncates it on open. Offsets are record numbers; a sparse
index file (``.idx``: pairs of i64 offset, i64 byte position every ``INDEX_INTERVAL`` records)
lets a reader seek without scanning the whole partition. Consumer-group positions are JSON
files replaced atomically. One process writes a topic at a time (an ``flock`` guards it).
"""

from __future__ import annotations

import fcntl
import json
import os
import struct
import time
import zlib
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

from flywheel.events.log import Message, Record, partition_for
from flywheel.files import replace_text

_HEADER = struct.Struct("<II")
_BODY_HEAD = struct.Struct("<qH")
_INDEX_ENTRY = struct.Struct("<qq")
NO_KEY = 0xFFFF
INDEX_INTERVAL = 1024
READ_CHUNK = 1 << 20


class LogError(RuntimeError):
    """The log cannot be used as asked (locked, missing topic, bad partition)."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def encode_frame(key: bytes | None, value: bytes, timestamp_ms: int) -> bytes:
    """The bytes of one record frame."""
    if key is None:
        body = _BODY_HEAD.pack(timestamp_ms, NO_KEY) + value
    else:
        if len(key) >= NO_KEY:
            raise LogError(f"key of {len(key)} bytes is too long (max {NO_KEY - 1})")
        body = _BODY_HEAD.pack(timestamp_ms, len(key)) + key + value
    return _HEADER.pack(len(body), zlib.crc32(body)) + body


def decode_frames(
    buffer: bytes, start: int, max_records: int
) -> tuple[list[tuple[int, bytes | None, bytes]], int, bool]:
    """Decode complete, intact frames from ``buffer[start:]``.

    Returns:
        ``(records, end, damaged)``: records as (timestamp, key, value); ``end`` the byte
        position after the last good frame; ``damaged`` True when a complete frame failed its
        checksum (as opposed to the buffer simply ending inside a frame).
    """
    out: list[tuple[int, bytes | None, bytes]] = []
    pos, size = start, len(buffer)
    header_size, body_head = _HEADER.size, _BODY_HEAD.size
    while len(out) < max_records and pos + header_size <= size:
        length, crc = _HEADER.unpack_from(buffer, pos)
        body_start = pos + header_size
        body_end = body_start + length
        if body_end > size or length < body_head:
            return out, pos, length < body_head and body_end <= size
        body = buffer[body_start:body_end]
        if zlib.crc32(body) != crc:
            return out, pos, True
        ts, key_len = _BODY_HEAD.unpack_from(body, 0)
        if key_len == NO_KEY:
            out.append((ts, None, body[body_head:]))
        else:
            out.append((ts, body[body_head : body_head + key_len], body[body_head + key_len :]))
        pos = body_end
    return out, pos, False


def _read_index(path: Path) -> list[tuple[int, int]]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    usable = len(raw) - len(raw) % _INDEX_ENTRY.size
    return [_INDEX_ENTRY.unpack_from(raw, i) for i in range(0, usable, _INDEX_ENTRY.size)]


class _Partition:
    """Paths of one partition and the scan that finds its valid end."""

    def __init__(self, folder: Path, number: int) -> None:
        self.number = number
        self.log_path = folder / f"p{number:05d}.log"
        self.idx_path = folder / f"p{number:05d}.idx"

    def index(self) -> list[tuple[int, int]]:
        return _read_index(self.idx_path)

    def seek_point(self, offset: int, index: list[tuple[int, int]], file_size: int) -> tuple[int, int]:
        """The last indexed (offset, byte position) at or before ``offset`` inside the file."""
        usable = [entry for entry in index if entry[1] < file_size] if index and index[-1][1] >= file_size else index
        i = bisect_right(usable, (offset, 1 << 62)) - 1
        return usable[i] if i >= 0 else (0, 0)

    def scan_end(self) -> tuple[int, int, int]:
        """(next offset, valid end byte, file size) found by scanning from the last index entry."""
        try:
            size = self.log_path.stat().st_size
        except FileNotFoundError:
            return 0, 0, 0
        offset, pos = self.seek_point(1 << 62, self.index(), size)
        with self.log_path.open("rb") as fh:
            while True:
                fh.seek(pos)
                chunk = fh.read(READ_CHUNK)
                if not chunk:
                    return offset, pos, size
                records, end, damaged = decode_frames(chunk, 0, 1 << 30)
                offset += len(records)
                pos += end
                if damaged or end == 0 or len(chunk) < READ_CHUNK:
                    if end == 0 and len(chunk) >= READ_CHUNK and not damaged:
                        # one frame larger than a chunk: read it whole
                        length = _HEADER.unpack_from(chunk, 0)[0]
                        fh.seek(pos)
                        big = fh.read(_HEADER.size + length)
                        records, end, damaged = decode_frames(big, 0, 1)
                        if records:
                            offset, pos = offset + 1, pos + end
                            continue
                    return offset, pos, size


class _TopicWriter:
    """Appends to every partition of one topic; owns the topic's writer lock."""

    def __init__(self, folder: Path, partitions: int, *, fsync: bool) -> None:
        self.folder = folder
        self.partitions = [_Partition(folder, p) for p in range(partitions)]
        self.fsync = fsync
        self._lock = (folder / ".writer.lock").open("a+b")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._lock.close()
            raise LogError(f"topic {folder.name!r} is being written by another process") from exc
        self.next_offset: list[int] = []
        self.torn_bytes_truncated = 0
        self._logs: list[BinaryIO] = []
        self._idx: list[BinaryIO] = []
        for part in self.partitions:
            offset, end, size = part.scan_end()
            if size > end:  # a torn tail from a crash: cut it before appending
                self.torn_bytes_truncated += size - end
                with part.log_path.open("r+b") as fh:
                    fh.truncate(end)
            index = [e for e in part.index() if e[1] < end or (e[1] == end and e[0] == offset)]
            raw_idx = b"".join(_INDEX_ENTRY.pack(*e) for e in index)
            if not part.idx_path.exists() or part.idx_path.stat().st_size != len(raw_idx):
                part.idx_path.write_bytes(raw_idx)
            self.next_offset.append(offset)
            self._logs.append(part.log_path.open("ab"))
            self._idx.append(part.idx_path.open("ab"))
        self._buffers = [bytearray() for _ in self.partitions]
        self._idx_buffers = [bytearray() for _ in self.partitions]
        self._positions = [fh.tell() for fh in self._logs]

    def append(self, partition: int, key: bytes | None, value: bytes, timestamp_ms: int) -> int:
        offset = self.next_offset[partition]
        buffer = self._buffers[partition]
        if offset % INDEX_INTERVAL == 0:
            self._idx_buffers[partition] += _INDEX_ENTRY.pack(offset, self._positions[partition] + len(buffer))
        buffer += encode_frame(key, value, timestamp_ms)
        self.next_offset[partition] = offset + 1
        return offset

    def flush(self) -> None:
        for p, buffer in enumerate(self._buffers):
            if buffer:
                self._logs[p].write(buffer)
                self._logs[p].flush()
                self._positions[p] += len(buffer)
                buffer.clear()
                if self.fsync:
                    os.fsync(self._logs[p].fileno())
            if self._idx_buffers[p]:
                self._idx[p].write(self._idx_buffers[p])
                self._idx[p].flush()
                self._idx_buffers[p].clear()

    def close(self) -> None:
        self.flush()
        for fh in (*self._logs, *self._idx):
            fh.close()
        fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()


class LocalProducer:
    """Producer of the local log; batches appends in memory until :meth:`flush`."""

    def __init__(self, writer: _TopicWriter, *, flush_every: int = 10_000) -> None:
        self._writer = writer
        self._pending = 0
        self._flush_every = flush_every

    def send(self, key: str | bytes | None, value: bytes, timestamp_ms: int | None = None) -> None:
        raw_key = key.encode() if isinstance(key, str) else key
        partition = partition_for(raw_key, len(self._writer.partitions))
        self._writer.append(partition, raw_key, value, _now_ms() if timestamp_ms is None else timestamp_ms)
        self._pending += 1
        if self._pending >= self._flush_every:
            self.flush()

    def send_many(self, messages: Iterable[Message]) -> int:
        count = 0
        n = len(self._writer.partitions)
        append = self._writer.append
        now = _now_ms()
        for key, value, ts in messages:
            raw_key = key.encode() if isinstance(key, str) else key
            append(partition_for(raw_key, n), raw_key, value, now if ts is None else ts)
            count += 1
        self._pending += count
        if self._pending >= self._flush_every:
            self.flush()
        return count

    def flush(self) -> None:
        self._writer.flush()
        self._pending = 0

    def close(self) -> None:
        self.flush()


class _PartitionReader:
    def __init__(self, part: _Partition) -> None:
        self.part = part
        self._cursor: tuple[int, int] | None = None  # (offset, byte position) of the next record
        self.damaged = False

    def read(self, topic: str, offset: int, max_records: int) -> list[Record]:
        try:
            size = self.part.log_path.stat().st_size
        except FileNotFoundError:
            return []
        if self._cursor is not None and self._cursor[0] == offset:
            at_offset, pos = self._cursor
        else:
            at_offset, pos = self.part.seek_point(offset, self.part.index(), size)
        out: list[Record] = []
        with self.part.log_path.open("rb") as fh:
            while len(out) < max_records and pos < size:
                fh.seek(pos)
                chunk = fh.read(max(READ_CHUNK, 0))
                frames, end, damaged = decode_frames(
                    chunk, 0, max_records - len(out) + (offset - at_offset if at_offset < offset else 0)
                )
                if end == 0 and not damaged and len(chunk) == READ_CHUNK:
                    length = _HEADER.unpack_from(chunk, 0)[0]
                    fh.seek(pos)
                    frames, end, damaged = decode_frames(fh.read(_HEADER.size + length), 0, 1)
                self.damaged = damaged
                for ts, key, value in frames:
                    if at_offset >= offset:
                        out.append(Record(topic, self.part.number, at_offset, key, value, ts))
                    at_offset += 1
                pos += end
                if end == 0 or damaged:
                    break
        self._cursor = (at_offset, pos) if at_offset >= offset else None
        return out


class LocalConsumer:
    """Consumer of the local log with group positions in ``_groups/<group>.json``."""

    def __init__(self, log: LocalEventLog, topic: str, group: str, partitions: Sequence[int]) -> None:
        self._log = log
        self.topic = topic
        self.group = group
        folder = log.topic_folder(topic)
        self._checkpoint = folder / "_groups" / f"{group}.json"
        committed = self._read_checkpoint()
        self._readers = {p: _PartitionReader(_Partition(folder, p)) for p in partitions}
        self._positions = {p: committed.get(p, 0) for p in partitions}
        self._next_partition = 0

    def _read_checkpoint(self) -> dict[int, int]:
        try:
            return {int(k): int(v) for k, v in json.loads(self._checkpoint.read_text()).items()}
        except FileNotFoundError:
            return {}

    def poll(self, max_records: int = 1000, timeout_s: float = 0.0) -> list[Record]:
        deadline = time.monotonic() + timeout_s
        while True:
            out: list[Record] = []
            order = sorted(self._readers)
            # rotate the starting partition so that no partition starves
            start = self._next_partition % len(order)
            self._next_partition += 1
            for p in order[start:] + order[:start]:
                if len(out) >= max_records:
                    break
                records = self._readers[p].read(self.topic, self._positions[p], max_records - len(out))
                if records:
                    self._positions[p] = records[-1].offset + 1
                    out.extend(records)
            if out or time.monotonic() >= deadline:
                return out
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def commit(self) -> None:
        merged = self._read_checkpoint()
        merged.update(self._positions)
        self._checkpoint.parent.mkdir(parents=True, exist_ok=True)
        replace_text(self._checkpoint, json.dumps({str(k): v for k, v in sorted(merged.items())}))

    def positions(self) -> dict[int, int]:
        return dict(self._positions)

    def lag(self) -> dict[int, int]:
        ends = self._log.end_offsets(self.topic)
        return {p: max(0, ends[p] - pos) for p, pos in self._positions.items()}

    def seek(self, partition: int, offset: int) -> None:
        self._positions[partition] = offset

    def close(self) -> None:
        self._readers.clear()


class LocalEventLog:
    """Topics as folders of partition files under ``root``."""

    def __init__(self, root: str | Path, *, partitions: int = 8, fsync: bool = False) -> None:
        self.root = Path(root)
        self.partitions = partitions
        self.fsync = fsync
        self._writers: dict[str, _TopicWriter] = {}

    def topic_folder(self, topic: str) -> Path:
        return self.root / topic

    def topic_partitions(self, topic: str) -> int:
        """Partition count of an existing topic.

        Raises:
            LogError: The topic does not exist.
        """
        meta = self.topic_folder(topic) / "topic.json"
        try:
            return int(json.loads(meta.read_text())["partitions"])
        except FileNotFoundError as exc:
            raise LogError(f"topic {topic!r} does not exist under {self.root}") from exc

    def topics(self) -> list[str]:
        """Names of the existing topics."""
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "topic.json").exists())

    def create_topic(self, name: str, partitions: int | None = None) -> None:
        folder = self.topic_folder(name)
        if (folder / "topic.json").exists():
            return
        folder.mkdir(parents=True, exist_ok=True)
        # a process reading the log never sees a half-written file
        replace_text(folder / "topic.json", json.dumps({"partitions": partitions or self.partitions}))

    def _writer(self, topic: str) -> _TopicWriter:
        if topic not in self._writers:
            self.create_topic(topic)
            self._writers[topic] = _TopicWriter(
                self.topic_folder(topic), self.topic_partitions(topic), fsync=self.fsync
            )
        return self._writers[topic]

    def producer(self, topic: str) -> LocalProducer:
        return LocalProducer(self._writer(topic))

    def consumer(self, topic: str, group: str, partitions: Sequence[int] | None = None) -> LocalConsumer:
        count = self.topic_partitions(topic)
        chosen = list(range(count)) if partitions is None else list(partitions)
        bad = [p for p in chosen if not 0 <= p < count]
        if bad:
            raise LogError(f"topic {topic!r} has partitions 0..{count - 1}, not {bad}")
        return LocalConsumer(self, topic, group, chosen)

    def read(self, topic: str, partition: int, offset: int, max_records: int = 1000) -> list[Record]:
        """Records of one partition from ``offset`` (no group involved)."""
        return _PartitionReader(_Partition(self.topic_folder(topic), partition)).read(topic, offset, max_records)

    def end_offsets(self, topic: str) -> dict[int, int]:
        if topic in self._writers:
            return dict(enumerate(self._writers[topic].next_offset))
        folder = self.topic_folder(topic)
        return {p: _Partition(folder, p).scan_end()[0] for p in range(self.topic_partitions(topic))}

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
