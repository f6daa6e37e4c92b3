"""Versioned Avro schemas of the event envelope and the compatibility check between versions.

The schemas are files in ``flywheel/events/schemas`` (``event.v<N>.avsc``). Avro enum symbols
cannot hold dots, so ``event_type`` is an Avro string whose allowed values the schema lists in
its ``x-event-types`` property; the compatibility check covers that list too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import fastavro

SCHEMA_PACKAGE = "flywheel.events"
SCHEMA_FOLDER = "schemas"


@dataclass(frozen=True)
class EventSchema:
    """One version of the event schema."""

    version: int
    raw: dict[str, Any]
    """The schema as written in the file (with the x- properties)."""
    parsed: dict[str, Any]
    """The schema parsed by fastavro (names resolved)."""

    @property
    def event_types(self) -> frozenset[str]:
        """Event types this version accepts."""
        return frozenset(self.raw["x-event-types"])


def _schema_files() -> dict[int, str]:
    folder = resources.files(SCHEMA_PACKAGE).joinpath(SCHEMA_FOLDER)
    found: dict[int, str] = {}
    for entry in folder.iterdir():
        name = entry.name
        if name.startswith("event.v") and name.endswith(".avsc"):
            found[int(name[len("event.v") : -len(".avsc")])] = entry.read_text(encoding="utf-8")
    return found


def parse_schema_text(text: str) -> EventSchema:
    """Parse the text of an ``.avsc`` file into an :class:`EventSchema`."""
    raw = json.loads(text)
    parsed = fastavro.parse_schema(json.loads(text), _write_hint=False)
    if not isinstance(parsed, dict):
        raise ValueError("an event schema must be an Avro record")
    return EventSchema(version=int(raw["x-version"]), raw=raw, parsed=parsed)


@cache
def schemas() -> dict[int, EventSchema]:
    """Every shipped schema version, by version number."""
    return {v: parse_schema_text(text) for v, text in sorted(_schema_files().items())}


def latest_version() -> int:
    """The newest schema version; producers write it."""
    return max(schemas())


def get_schema(version: int | None = None) -> EventSchema:
    """The schema of ``version`` (the latest when None).

    Raises:
        KeyError: No such version ships with this release.
    """
    return schemas()[latest_version() if version is None else version]


@dataclass(frozen=True)
class CompatibilityReport:
    """Result of checking two schema versions against each other."""

    reader_version: int
    writer_version: int
    compatible: bool
    problems: tuple[str, ...]


def check_read_compatibility(reader: EventSchema, writer: EventSchema) -> CompatibilityReport:
    """Can data written with ``writer`` be read with ``reader``? (Avro schema resolution.)

    Uses Apache Avro's own ``ReaderWriterCompatibilityChecker`` for the Avro types and adds the
    rule for ``x-event-types``: every event type the writer may produce must be known to the
    reader.
    """
    from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
    from avro.schema import parse as avro_parse

    problems: list[str] = []
    result = ReaderWriterCompatibilityChecker().get_compatibility(
        avro_parse(json.dumps(reader.raw)), avro_parse(json.dumps(writer.raw))
    )
    if result.compatibility is not SchemaCompatibilityType.compatible:
        problems.extend(str(m) for m in result.messages)
    unknown = writer.event_types - reader.event_types
    if unknown:
        problems.append(f"event types unknown to the reader: {sorted(unknown)}")
    return CompatibilityReport(reader.version, writer.version, not problems, tuple(problems))


def check_compatibility(old: EventSchema, new: EventSchema) -> list[CompatibilityReport]:
    """Full (backward and forward) compatibility of ``new`` against ``old``.

    Backward: consumers on ``new`` read data written with ``old``. Forward: consumers still on
    ``old`` read data written with ``new``.
    """
    return [check_read_compatibility(new, old), check_read_compatibility(old, new)]
