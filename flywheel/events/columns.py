"""Columnar event batches: the simulator's in-memory form of events before they become JSON.

An :class:`EventColumns` holds one numpy array per field; missing values are -1 (codes and
indices) or NaN (numbers). Keeping events columnar lets the simulator generate, shuffle,
duplicate and delay hundreds of thousands of events with vectorised numpy, and turn them into
JSON only once, right before writing.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from flywheel.events.schema import get_schema

#: Event types of the latest schema, in the schema file's order (the codes of the columns).
EVENT_TYPES: tuple[str, ...] = tuple(get_schema().raw["x-event-types"])
CODE = {name: i for i, name in enumerate(EVENT_TYPES)}
PAGES: tuple[str, ...] = ("home", "search")
ALGORITHMS: tuple[str, ...] = ("personalized", "trending", "new_arrivals", "search")


@dataclass
class EventColumns:
    """A batch of events, one array per field (all the same length)."""

    event_type: np.ndarray  # int8 code into EVENT_TYPES
    true_ms: np.ndarray  # int64: when it happened
    timestamp_ms: np.ndarray  # int64: what the client clock said (skew)
    arrival_ms: np.ndarray  # int64: when it reached the log (late events)
    user: np.ndarray  # int32 index into the population
    session: np.ndarray  # uint64 session key
    item: np.ndarray  # int32 index into the catalog, -1 none
    device: np.ndarray  # int32 index into the device table
    page: np.ndarray  # int8 index into PAGES, -1 none
    row: np.ndarray  # int16, -1 none
    position: np.ndarray  # int16, -1 none
    algorithm: np.ndarray  # int8 index into ALGORITHMS, -1 none
    propensity: np.ndarray  # float64, NaN none
    experiment: np.ndarray  # int16 index into the configured experiments, -1 none
    variant: np.ndarray  # int16 index into that experiment's variants, -1 none
    watch_s: np.ndarray  # float64, NaN none
    position_s: np.ndarray  # float64, NaN none
    duration_s: np.ndarray  # float64, NaN none
    query: np.ndarray  # int32 index into the query texts, -1 none
    id_hi: np.ndarray  # uint64: high half of the event id
    id_lo: np.ndarray  # uint64: low half of the event id
    duplicate: np.ndarray  # bool: a retried copy
    late: np.ndarray  # bool: delivered late on purpose
    broken: np.ndarray  # int8: 0 valid, else the kind of damage

    def __len__(self) -> int:
        return len(self.event_type)

    def take(self, index: np.ndarray) -> EventColumns:
        """The rows at ``index`` (an integer or boolean array), in that order."""
        return EventColumns(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concat(parts: list[EventColumns]) -> EventColumns:
        """Rows of every part, in order."""
        return EventColumns(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(EventColumns)}
        )

    @staticmethod
    def empty() -> EventColumns:
        """A batch without rows."""
        return EventColumns.build(np.zeros(0, dtype=np.int8), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))

    @staticmethod
    def build(event_type: np.ndarray, true_ms: np.ndarray, user: np.ndarray, **values: np.ndarray) -> EventColumns:
        """A batch with the given columns; the others are filled with their missing value."""
        n = len(event_type)
        defaults: dict[str, np.ndarray] = {
            "session": np.zeros(n, dtype=np.uint64),
            "item": np.full(n, -1, dtype=np.int32),
            "device": np.zeros(n, dtype=np.int32),
            "page": np.full(n, -1, dtype=np.int8),
            "row": np.full(n, -1, dtype=np.int16),
            "position": np.full(n, -1, dtype=np.int16),
            "algorithm": np.full(n, -1, dtype=np.int8),
            "propensity": np.full(n, np.nan),
            "experiment": np.full(n, -1, dtype=np.int16),
            "variant": np.full(n, -1, dtype=np.int16),
            "watch_s": np.full(n, np.nan),
            "position_s": np.full(n, np.nan),
            "duration_s": np.full(n, np.nan),
            "query": np.full(n, -1, dtype=np.int32),
            "id_hi": np.zeros(n, dtype=np.uint64),
            "id_lo": np.zeros(n, dtype=np.uint64),
            "duplicate": np.zeros(n, dtype=bool),
            "late": np.zeros(n, dtype=bool),
            "broken": np.zeros(n, dtype=np.int8),
        }
        for name, value in values.items():
            defaults[name] = np.asarray(value).astype(defaults[name].dtype, copy=False)
        true = np.asarray(true_ms, dtype=np.int64)
        return EventColumns(
            event_type=np.asarray(event_type, dtype=np.int8),
            true_ms=true,
            timestamp_ms=true.copy(),
            arrival_ms=true.copy(),
            user=np.asarray(user, dtype=np.int32),
            **defaults,
        )
