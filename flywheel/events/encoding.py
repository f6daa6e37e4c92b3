"""Turning columnar events into log messages: schema-v2 JSON (orjson), or broken payloads.

Ids are built vectorised: an event id is 128 random bits formatted as a version-4 UUID
string, a session id is ``s`` followed by 16 hex digits of the session key. Every schema
field is written, missing values as null, so that consumers can rely on the keys.

Broken payloads (the schema-broken scenario) are made from the event they replace, one kind
per record, mixed evenly: see :data:`BROKEN_KINDS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from flywheel.events.columns import ALGORITHMS, EVENT_TYPES, PAGES, EventColumns
from flywheel.events.log import Message

SCHEMA_VERSION = 2
SOURCE = "simulator"
#: What the schema-broken scenario does to an event (code = index + 1).
BROKEN_KINDS: tuple[str, ...] = (
    "truncated_json",
    "wrong_type",
    "unknown_event_type",
    "missing_field",
    "negative_watch_seconds",
    "negative_position",
    "future_timestamp",
)
FAR_FUTURE_MS = 4_102_444_800_000
"""2100-01-01: broken "future" timestamps lie beyond any clock a consumer may use."""
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def hex_ids(hi: np.ndarray, lo: np.ndarray) -> list[str]:
    """UUID-v4-formatted strings from two uint64 columns (version and variant bits forced)."""
    n = len(hi)
    if n == 0:
        return []
    raw = np.empty((n, 2), dtype=">u8")
    raw[:, 0] = hi
    raw[:, 1] = lo
    octets = raw.view(np.uint8).reshape(n, 16).copy()
    octets[:, 6] = (octets[:, 6] & 0x0F) | 0x40
    octets[:, 8] = (octets[:, 8] & 0x3F) | 0x80
    digits = np.empty((n, 32), dtype=np.uint8)
    digits[:, 0::2] = _HEX[octets >> 4]
    digits[:, 1::2] = _HEX[octets & 0x0F]
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    text[:, 0:8] = digits[:, 0:8]
    text[:, 9:13] = digits[:, 8:12]
    text[:, 14:18] = digits[:, 12:16]
    text[:, 19:23] = digits[:, 16:20]
    text[:, 24:36] = digits[:, 20:32]
    joined = text.tobytes().decode("ascii")
    return [joined[i : i + 36] for i in range(0, 36 * n, 36)]


def hex_keys(keys: np.ndarray, prefix: str) -> list[str]:
    """``prefix`` followed by the 16 hex digits of each uint64 key."""
    n = len(keys)
    if n == 0:
        return []
    octets = np.ascontiguousarray(keys.astype(">u8")).view(np.uint8).reshape(n, 8)
    digits = np.empty((n, 16), dtype=np.uint8)
    digits[:, 0::2] = _HEX[octets >> 4]
    digits[:, 1::2] = _HEX[octets & 0x0F]
    joined = digits.tobytes().decode("ascii")
    return [prefix + joined[i : i + 16] for i in range(0, 16 * n, 16)]


def right_sized(payload: bytes) -> bytes:
    """A copy of ``payload`` in a bytes object of its own size.

    orjson returns bytes that keep a 4 KiB capacity; holding thousands of them before a write
    costs more in fresh memory (page faults) than serialising. Copying is cheaper.
    """
    return bytes(memoryview(payload))


def _with_none(values: np.ndarray, missing: np.ndarray) -> list[Any]:
    out = values.astype(object)
    out[missing] = None
    return out.tolist()


def _lookup(table: Sequence[Any], codes: np.ndarray) -> list[Any]:
    """``table[code]`` per code, None for -1."""
    padded = np.empty(len(table) + 1, dtype=object)
    padded[:-1] = table
    padded[-1] = None
    return padded[codes].tolist()


@dataclass(frozen=True)
class Vocabulary:
    """The strings events refer to by index (built once per simulation)."""

    user_ids: Sequence[str]
    content_ids: Sequence[str]
    devices: Sequence[dict[str, Any]]
    """The ``device`` object of each device (shared by its events)."""
    experiment_ids: Sequence[str]
    variant_names: Sequence[Sequence[str]]
    queries: Sequence[str]


def encode(cols: EventColumns, vocab: Vocabulary, rng: np.random.Generator) -> list[Message]:
    """Messages ``(user_id, json_bytes, timestamp_ms)`` for every row, in row order.

    Rows with a ``broken`` code get the damage of that kind; ``rng`` only picks details of the
    damage (which field, where to cut).
    """
    n = len(cols)
    if n == 0:
        return []
    event_ids = hex_ids(cols.id_hi, cols.id_lo)
    session_ids = hex_keys(cols.session, "s")
    types = _lookup(EVENT_TYPES, cols.event_type)
    users = _lookup(vocab.user_ids, cols.user)
    items = _lookup(vocab.content_ids, cols.item)
    devices = _lookup(vocab.devices, cols.device)
    pages = _lookup(PAGES, cols.page)
    algorithms = _lookup(ALGORITHMS, cols.algorithm)
    queries = _lookup(vocab.queries, cols.query)
    experiments = _lookup(vocab.experiment_ids, cols.experiment)
    flat_variants = [name for names in vocab.variant_names for name in names]
    first_variant = np.cumsum([0] + [len(names) for names in vocab.variant_names])[:-1]
    variant_codes = np.full(n, -1, dtype=np.int64)
    if len(first_variant):
        in_experiment = cols.experiment >= 0
        variant_codes[in_experiment] = first_variant[cols.experiment[in_experiment]] + cols.variant[in_experiment]
    variants = _lookup(flat_variants, variant_codes)
    rows = _with_none(cols.row, cols.row < 0)
    positions = _with_none(cols.position, cols.position < 0)
    propensity = _with_none(cols.propensity, np.isnan(cols.propensity))
    watch = _with_none(cols.watch_s, np.isnan(cols.watch_s))
    playhead = _with_none(cols.position_s, np.isnan(cols.position_s))
    duration = _with_none(cols.duration_s, np.isnan(cols.duration_s))
    timestamps = cols.timestamp_ms.tolist()
    dumps = orjson.dumps
    messages: list[Message] = [
        (
            user,
            right_sized(
                dumps(
                    {
                        "event_id": event_id,
                        "event_type": event_type,
                        "schema_version": SCHEMA_VERSION,
                        "timestamp_ms": ts,
                        "user_id": user,
                        "session_id": session_id,
                        "content_id": item,
                        "device": device,
                        "context": {
                            "page": page,
                            "row": row,
                            "position": position,
                            "algorithm": algorithm,
                            "experiment_id": experiment,
                            "variant": variant,
                            "propensity": prop,
                        },
                        "watch_seconds": watched,
                        "position_seconds": head,
                        "query": query,
                        "duration_seconds": length,
                        "rating": None,
                        "source": SOURCE,
                    }
                )
            ),
            ts,
        )
        for (
            event_id,
            event_type,
            ts,
            user,
            session_id,
            item,
            device,
            page,
            row,
            position,
            algorithm,
            experiment,
            variant,
            prop,
            watched,
            head,
            query,
            length,
        ) in zip(
            event_ids,
            types,
            timestamps,
            users,
            session_ids,
            items,
            devices,
            pages,
            rows,
            positions,
            algorithms,
            experiments,
            variants,
            propensity,
            watch,
            playhead,
            queries,
            duration,
            strict=True,
        )
    ]
    for i in np.flatnonzero(cols.broken).tolist():
        key, value, ts = messages[i]
        messages[i] = (key, break_payload(value, int(cols.broken[i]), rng), ts)
    return messages


def break_payload(value: bytes, kind: int, rng: np.random.Generator) -> bytes:
    """Damage a valid event payload in the way ``BROKEN_KINDS[kind - 1]`` names."""
    name = BROKEN_KINDS[kind - 1]
    if name == "truncated_json":
        return value[: int(rng.integers(1, len(value) - 1))]
    event = orjson.loads(value)
    if name == "wrong_type":
        field = ("timestamp_ms", "user_id", "schema_version_context")[int(rng.integers(0, 3))]
        if field == "timestamp_ms":
            event["timestamp_ms"] = str(event["timestamp_ms"])
        elif field == "user_id":
            event["user_id"] = int(event["user_id"][1:])
        else:
            event["context"] = "home"
    elif name == "unknown_event_type":
        event["event_type"] = ("playback.rewound", "view", "heartbeat")[int(rng.integers(0, 3))]
    elif name == "missing_field":
        del event[("user_id", "event_id", "device", "session_id")[int(rng.integers(0, 4))]]
    elif name == "negative_watch_seconds":
        event["event_type"] = "playback.stopped"
        event["content_id"] = event["content_id"] or "c000001"
        event["watch_seconds"] = -float(rng.integers(1, 600))
    elif name == "negative_position":
        event["context"]["position"] = -int(rng.integers(1, 10))
    elif name == "future_timestamp":
        event["timestamp_ms"] = FAR_FUTURE_MS + int(rng.integers(0, 10**10))
    return orjson.dumps(event)
