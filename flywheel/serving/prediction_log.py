"""The prediction log: one JSON record per request and variant on the ``predictions`` topic.

Record (the contract the monitoring and rollout analyses read)::

    {"request_id": str, "timestamp_ms": int, "user_id": str, "model_name": str,
     "model_version": str, "variant": "champion"|"canary"|"shadow", "rollout_id": str|null,
     "features": {name: number|string}, "items": [str], "scores": [float],
     "latency_ms": float, "error": str|null}

Keyed by user_id (a user's records share a partition with the user's events). Sampling is decided
by the request id (:func:`sampled`), so the champion's and the shadow's records of one request
are kept or dropped together. :class:`PredictionWriter` appends from a background thread so that
the request path only queues; :func:`read_predictions` reads a topic back.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import orjson

from flywheel.experiments.assignment import unit_hash

if TYPE_CHECKING:
    from flywheel.events.log import EventLog, Producer

LoggedVariant = Literal["champion", "canary", "shadow"]
SAMPLING_SALT = "predictions"


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One logged answer of one variant to one request."""

    request_id: str
    timestamp_ms: int
    user_id: str
    model_name: str
    model_version: str
    variant: LoggedVariant
    rollout_id: str | None
    features: Mapping[str, float | str]
    items: Sequence[str]
    scores: Sequence[float]
    latency_ms: float
    error: str | None = None

    def to_json(self) -> bytes:
        """The record as the contract's JSON (UTF-8 bytes)."""
        raw = {name: getattr(self, name) for name in self.__dataclass_fields__}  # asdict() copies deeply: slow
        raw["features"] = dict(self.features)
        raw["items"] = [str(i) for i in self.items]
        raw["scores"] = [float(s) for s in self.scores]
        return orjson.dumps(raw)

    @classmethod
    def from_json(cls, data: bytes | str) -> PredictionRecord:
        """Parse a record written by :meth:`to_json`.

        Raises:
            ValueError: The text is not a prediction record (names the missing or unknown fields).
        """
        raw = orjson.loads(data)
        if not isinstance(raw, dict):
            raise ValueError("a prediction record must be a JSON object")
        fields = set(cls.__dataclass_fields__)
        missing, unknown = fields - set(raw) - {"error"}, set(raw) - fields
        if missing or unknown:
            raise ValueError(f"not a prediction record: missing {sorted(missing)}, unknown {sorted(unknown)}")
        return cls(**raw)


def sampled(request_id: str, rate: float) -> bool:
    """Whether a request is logged at sampling ``rate`` (deterministic in the request id)."""
    if rate >= 1:
        return True
    if rate <= 0:
        return False
    return unit_hash(request_id, SAMPLING_SALT) < rate


def new_request_id() -> str:
    """A fresh request id."""
    return uuid.uuid4().hex


class PredictionWriter:
    """Appends prediction records to a topic from a daemon thread (the request path only queues).

    The thread wakes every ``flush_ms``, writes what was queued since and flushes, so records wait at
    most about ``flush_ms``; :meth:`close` writes the rest. Waking per record instead (until
    2026-12-04) cost a one-client request about 0.5 ms: the thread took the GIL from the event loop
    at every answer. A full queue drops the record and counts it in :attr:`dropped` (logging never
    blocks serving).
    """

    def __init__(
        self, producer: Producer, *, sample_rate: float = 1.0, flush_ms: float = 200.0, max_queue: int = 10_000
    ) -> None:
        self.producer = producer
        self.sample_rate = sample_rate
        self.flush_s = flush_ms / 1000.0
        self.max_queue = max_queue
        self.dropped = 0
        self.written = 0
        self._records: deque[PredictionRecord] = deque()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def log(self, record: PredictionRecord) -> bool:
        """Queue ``record`` if its request is sampled; False when it is not logged."""
        if not sampled(record.request_id, self.sample_rate):
            return False
        if len(self._records) >= self.max_queue:
            self.dropped += 1
            return False
        self._records.append(record)
        return True

    def _run(self) -> None:
        while not self._closing.wait(self.flush_s):
            self._write_queued()
        self._write_queued()

    def _write_queued(self) -> None:
        records = self._records
        if not records:
            return
        while records:
            record = records.popleft()
            self.producer.send(record.user_id, record.to_json(), record.timestamp_ms)
            self.written += 1
        self.producer.flush()

    def close(self) -> None:
        """Write what is queued, flush and stop the thread."""
        self._closing.set()
        self._thread.join()
        self.producer.close()


def read_predictions(
    log: EventLog, topic: str = "predictions", *, timeout_s: float = 5.0
) -> Iterator[PredictionRecord]:
    """Every record of ``topic`` from the start, in partition order (a throw-away consumer group).

    Raises:
        ValueError: A record is not a prediction record.
    """
    end = {p: o for p, o in log.end_offsets(topic).items() if o > 0}
    if not end:
        return
    consumer = log.consumer(topic, f"read-predictions-{uuid.uuid4().hex}", partitions=sorted(end))
    try:
        for partition in end:
            consumer.seek(partition, 0)
        deadline = time.monotonic() + timeout_s
        while any(consumer.positions().get(p, 0) < o for p, o in end.items()) and time.monotonic() < deadline:
            for record in consumer.poll(1000, timeout_s=0.2):
                yield PredictionRecord.from_json(record.value)
    finally:
        consumer.close()
