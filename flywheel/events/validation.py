"""Validation of every event on the way in, with a specific reason for each rejection.

A validator is compiled once per schema version from the Avro schema (types, required
fields, enum symbols, unions) and adds the platform's semantic rules (known event types,
non-negative durations and positions, clock skew). It never raises on bad input: whatever
the payload, it returns a :class:`ValidationResult` whose rejections each carry a code
(low-cardinality, for metrics), the field concerned and a message for people.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Protocol, Union, cast

import msgspec
import orjson

from flywheel.events.schema import EventSchema, schemas

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
EARLIEST_PLAUSIBLE_MS = 0
"""The default lower bound of ``timestamp_ms`` (the Unix epoch: data of any era is plausible)."""
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")

#: Event types that concern one piece of content and so need ``content_id``.
CONTENT_EVENT_TYPES = frozenset(
    {
        "playback.started",
        "playback.paused",
        "playback.seeked",
        "playback.buffering",
        "playback.completed",
        "playback.stopped",
        "impression",
        "click",
        "like",
        "save",
        "share",
        "add_to_list",
    }
)
#: Event types that report time watched and so need ``watch_seconds``.
WATCH_EVENT_TYPES = frozenset({"playback.stopped", "playback.completed", "playback.paused"})
_NON_NEGATIVE = ("position_seconds", "duration_seconds", "rating")

#: Every rejection code the validator can return.
REJECTION_CODES = (
    "malformed_json",
    "not_an_object",
    "missing_field",
    "wrong_type",
    "unknown_field",
    "invalid_enum",
    "unknown_schema_version",
    "unknown_event_type",
    "invalid_uuid",
    "negative_value",
    "out_of_range",
    "future_timestamp",
    "implausible_timestamp",
    "missing_content_id",
    "missing_watch_seconds",
    "missing_query",
)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an event was rejected."""

    code: str
    """One of :data:`REJECTION_CODES`."""
    field: str
    """Dotted path of the field concerned ("" for the whole payload)."""
    message: str
    """What is wrong, for people."""

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(slots=True)
class ValidationResult:
    """An accepted event, or the reasons it was rejected."""

    event: dict[str, Any] | None
    rejections: tuple[Rejection, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the event was accepted."""
        return not self.rejections

    @property
    def reason(self) -> str:
        """All rejections in one line (empty when accepted)."""
        return "; ".join(str(r) for r in self.rejections)


def iso_time(ms: int) -> str:
    """An epoch time in ms as an ISO-8601 UTC string (for messages)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class ValidationRules:
    """The semantic limits applied on top of the schema."""

    max_clock_skew_ms: int = 300_000
    max_watch_seconds: float = 6 * 3600.0
    earliest_ms: int = EARLIEST_PLAUSIBLE_MS
    """Events stamped before this (ms since the epoch) are implausible (``validation.earliest_timestamp``)."""


Checker = Callable[[Any, str, list[Rejection]], None]


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _compile(avro_type: Any) -> tuple[Checker, str]:
    """Compile an Avro (parsed) type into a checker and a description of the type."""
    if isinstance(avro_type, list):  # union
        branches = [_compile(t) for t in avro_type]
        nullable = "null" in avro_type
        others = [(c, d) for (c, d), t in zip(branches, avro_type, strict=True) if t != "null"]
        desc = " or ".join(d for _, d in branches)
        if nullable and len(others) == 1:
            inner, _ = others[0]

            def check_nullable(value: Any, path: str, out: list[Rejection]) -> None:
                if value is not None:
                    inner(value, path, out)

            return check_nullable, desc

        def check_union(value: Any, path: str, out: list[Rejection]) -> None:
            for checker, _ in branches:
                trial: list[Rejection] = []
                checker(value, path, trial)
                if not trial:
                    return
            out.append(Rejection("wrong_type", path, f"'{path}' must be {desc}, got {_type_name(value)}"))

        return check_union, desc
    if isinstance(avro_type, dict):
        kind = avro_type["type"]
        if kind == "record":
            return _compile_record(avro_type), "object"
        if kind == "enum":
            symbols = frozenset(avro_type["symbols"])

            def check_enum(value: Any, path: str, out: list[Rejection]) -> None:
                if not isinstance(value, str):
                    out.append(Rejection("wrong_type", path, f"'{path}' must be a string, got {_type_name(value)}"))
                elif value not in symbols:
                    out.append(Rejection("invalid_enum", path, f"'{path}' is {value!r}, not one of {sorted(symbols)}"))

            return check_enum, "string"
        return _compile(kind)
    return _PRIMITIVES[avro_type], str(avro_type)


def _check_string(value: Any, path: str, out: list[Rejection]) -> None:
    if not isinstance(value, str):
        out.append(Rejection("wrong_type", path, f"'{path}' must be a string, got {_type_name(value)}"))


def _check_int(value: Any, path: str, out: list[Rejection]) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        out.append(Rejection("wrong_type", path, f"'{path}' must be an integer, got {_type_name(value)}"))
    elif not INT32_MIN <= value <= INT32_MAX:
        out.append(Rejection("out_of_range", path, f"'{path}' = {value} does not fit in 32 bits"))


def _check_long(value: Any, path: str, out: list[Rejection]) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        out.append(Rejection("wrong_type", path, f"'{path}' must be an integer, got {_type_name(value)}"))
    elif not -(2**63) <= value < 2**63:
        out.append(Rejection("out_of_range", path, f"'{path}' = {value} does not fit in 64 bits"))


def _check_double(value: Any, path: str, out: list[Rejection]) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        out.append(Rejection("wrong_type", path, f"'{path}' must be a number, got {_type_name(value)}"))
    elif not math.isfinite(value):
        out.append(Rejection("out_of_range", path, f"'{path}' must be finite, got {value}"))


def _check_boolean(value: Any, path: str, out: list[Rejection]) -> None:
    if not isinstance(value, bool):
        out.append(Rejection("wrong_type", path, f"'{path}' must be true or false, got {_type_name(value)}"))


def _check_null(value: Any, path: str, out: list[Rejection]) -> None:
    if value is not None:
        out.append(Rejection("wrong_type", path, f"'{path}' must be null, got {_type_name(value)}"))


_PRIMITIVES: dict[str, Checker] = {
    "string": _check_string,
    "int": _check_int,
    "long": _check_long,
    "double": _check_double,
    "float": _check_double,
    "boolean": _check_boolean,
    "null": _check_null,
}


def _compile_record(record: dict[str, Any]) -> Checker:
    fields = []
    for field in record["fields"]:
        checker, _ = _compile(field["type"])
        fields.append((field["name"], "default" in field, checker))
    known = frozenset(name for name, _, _ in fields)

    def check_record(value: Any, path: str, out: list[Rejection]) -> None:
        if not isinstance(value, dict):
            out.append(Rejection("wrong_type", path, f"'{path}' must be an object, got {_type_name(value)}"))
            return
        prefix = f"{path}." if path else ""
        for name, has_default, checker in fields:
            if name in value:
                checker(value[name], prefix + name, out)
            elif not has_default:
                out.append(Rejection("missing_field", prefix + name, f"required field '{prefix + name}' is missing"))
        if len(value) > len(known) or any(k not in known for k in value):
            for extra in sorted(k for k in value if k not in known):
                out.append(Rejection("unknown_field", prefix + str(extra), f"unknown field '{prefix}{extra}'"))

    return check_record


#: The bounds every value of an Avro scalar type has (a double must be finite: NaN fails them too).
_BOUNDS: dict[str, dict[str, Any]] = {
    "int": {"ge": INT32_MIN, "le": INT32_MAX},
    "long": {"ge": -(2**63), "le": 2**63 - 1},
    "double": {"ge": -sys.float_info.max, "le": sys.float_info.max},
    "float": {"ge": -sys.float_info.max, "le": sys.float_info.max},
}
_PYTHON: dict[str, Any] = {
    "string": str,
    "int": int,
    "long": int,
    "double": float,
    "float": float,
    "boolean": bool,
    "null": None,
}
#: A refinement of one field for the fast check: msgspec.Meta constraints, or a type that replaces the field's.
Refinement = dict[str, Any] | Any


def _scalar(name: str, refine: Refinement | None) -> Any:
    if refine is not None and not isinstance(refine, dict):
        return refine
    constraints = dict(_BOUNDS.get(name, {}))
    for key, value in (refine or {}).items():
        if key == "ge" and "ge" in constraints:
            constraints["ge"] = max(constraints["ge"], value)
        elif key == "le" and "le" in constraints:
            constraints["le"] = min(constraints["le"], value)
        elif key == "gt":
            constraints.pop("ge", None)
            constraints["gt"] = value
        else:
            constraints[key] = value
    base = _PYTHON[name]
    return Annotated[base, msgspec.Meta(**constraints)] if constraints else base


def _struct_type(avro_type: Any, path: str, refine: dict[str, Refinement]) -> Any:
    """The msgspec type of an Avro (parsed) type at ``path``; records become Structs that forbid unknown fields."""
    if isinstance(avro_type, list):
        return Union[tuple(_struct_type(t, path, refine) for t in avro_type)]  # noqa: UP007 - built at run time
    if isinstance(avro_type, dict):
        kind = avro_type["type"]
        if kind == "record":
            return _schema_struct(avro_type, path, refine)
        if kind == "enum":
            return Literal[tuple(avro_type["symbols"])]
        return _struct_type(kind, path, refine)
    return None if avro_type == "null" else _scalar(avro_type, refine.get(path))


def _schema_struct(record: dict[str, Any], path: str, refine: dict[str, Refinement]) -> type[msgspec.Struct]:
    """A msgspec Struct with the record's fields and types (required unless the field has a default)."""
    prefix = f"{path}." if path else ""
    required, optional = [], []
    for field in record["fields"]:
        field_type = _struct_type(field["type"], prefix + field["name"], refine)
        if "default" in field:
            optional.append((field["name"], field_type, msgspec.field(default=None)))
        else:
            required.append((field["name"], field_type))
    return msgspec.defstruct(record["name"].rsplit(".", 1)[-1], [*required, *optional], forbid_unknown_fields=True)


def schema_check(record: dict[str, Any], refine: dict[str, Refinement] | None = None) -> Callable[[Any], bool]:
    """ "Does this decoded event pass the schema (and the refinements)?", without reasons, in C.

    msgspec converts the event to a Struct generated from the Avro schema: types, required fields,
    unknown fields, enum symbols, 32-bit ints, finite numbers; ``refine`` adds constraints by dotted
    field path (msgspec.Meta keywords such as ``ge`` or ``pattern``, or a replacement type). It must
    never be more lenient than :func:`_compile_record`'s walk; a property test holds the two to the
    same answer.
    """
    struct = _schema_struct(record, "", refine or {})
    convert, invalid = msgspec.convert, msgspec.ValidationError

    def check(obj: Any) -> bool:
        if type(obj) is not dict:
            return False
        try:
            convert(obj, struct)
        except invalid:
            return False
        return True

    return check


def _refinements(schema: EventSchema, rules: ValidationRules) -> dict[str, Refinement]:
    """The semantic rules that are constraints on one field, for the fast check (see ``_semantic``)."""
    return {
        "event_id": {"pattern": _UUID.pattern, "min_length": 36, "max_length": 36},
        "event_type": Literal[tuple(sorted(schema.event_types))],
        "timestamp_ms": {"ge": rules.earliest_ms},
        "watch_seconds": {"ge": 0, "le": rules.max_watch_seconds},
        "position_seconds": {"ge": 0},
        "duration_seconds": {"ge": 0},
        "rating": {"ge": 0},
        "context.row": {"ge": 0},
        "context.position": {"ge": 0},
        "context.propensity": {"gt": 0, "le": 1},
    }


class DecodedEvent(Protocol):
    """An accepted event as :meth:`EventValidator.accept_bytes` returns it: a msgspec Struct of its
    schema version, fields as attributes (the v2 fields, ``rating`` among them, absent on v1)."""

    event_id: str
    event_type: str
    schema_version: int
    timestamp_ms: int
    user_id: str
    content_id: str | None
    watch_seconds: float | None
    query: str | None


class EventValidator:
    """Validates events against the schema version each declares, plus the semantic rules."""

    def __init__(self, *, rules: ValidationRules | None = None) -> None:
        self.rules = rules or ValidationRules()
        self._checkers: dict[int, tuple[EventSchema, Checker]] = {
            version: (schema, _compile_record(schema.parsed)) for version, schema in schemas().items()
        }
        self._event_types = {version: schema.event_types for version, schema in schemas().items()}
        # the schema and the one-field rules as Structs (the fast checks of :meth:`validate` and
        # :meth:`accept_bytes`); each admits only its own schema_version
        self._structs: dict[int, type[msgspec.Struct]] = {
            version: _schema_struct(
                schema.parsed, "", {**_refinements(schema, self.rules), "schema_version": Literal[version]}
            )
            for version, schema in schemas().items()
        }
        self._decoders = [msgspec.json.Decoder(self._structs[v]) for v in sorted(self._structs, reverse=True)]

    def validate_bytes(self, payload: bytes | str, *, now_ms: int) -> ValidationResult:
        """Parse a JSON payload and validate it.

        Args:
            payload: The raw message as received.
            now_ms: The receiver's clock, for the clock-skew rule.
        """
        try:
            obj = orjson.loads(payload)
        except (orjson.JSONDecodeError, TypeError, UnicodeDecodeError) as exc:
            return ValidationResult(None, (Rejection("malformed_json", "", f"payload is not valid JSON: {exc}"),))
        return self.validate(obj, now_ms=now_ms)

    def accept_bytes(self, payload: bytes, *, now_ms: int) -> DecodedEvent | None:
        """The event when a JSON payload is valid, decoded to a Struct of its schema version; else None.

        The stream's fast path: one pass in C from bytes to a checked Struct (fields are
        attributes; ``rating`` and the other v2 fields are absent from a v1 event). None says only
        "not accepted here": :meth:`validate_bytes` gives the reasons, and accepts exactly the
        payloads this accepts (a property test holds the two to the same answer).
        """
        for decoder in self._decoders:
            try:
                event = decoder.decode(payload)
            except msgspec.ValidationError:
                continue  # another version's Struct may take it
            except msgspec.DecodeError:
                return None  # not JSON
            return cast("DecodedEvent", event) if self._cross_field_ok(event, now_ms) else None
        return None

    def as_struct(self, event: dict[str, Any]) -> DecodedEvent:
        """An accepted event (a :class:`ValidationResult`'s) as :meth:`accept_bytes` returns it."""
        return cast("DecodedEvent", msgspec.convert(event, self._structs[event["schema_version"]]))

    def _cross_field_ok(self, event: Any, now_ms: int) -> bool:
        """The rules a Struct cannot express (two fields, or the clock), on a decoded event."""
        event_type = event.event_type
        return bool(
            event.timestamp_ms <= now_ms + self.rules.max_clock_skew_ms
            and (event_type not in CONTENT_EVENT_TYPES or event.content_id)
            and (event_type not in WATCH_EVENT_TYPES or event.watch_seconds is not None)
            and (event_type != "search" or event.query)
        )

    def validate(self, obj: Any, *, now_ms: int) -> ValidationResult:
        """Validate a decoded event. Never raises.

        The usual case, a good event, is accepted by the fast check (the schema and the rules that
        constrain one field, in C) and the few rules left; any other event takes the slow path,
        which walks the schema and the rules to say every reason.
        """
        if type(obj) is dict:
            version = obj.get("schema_version")
            struct = self._structs.get(version) if type(version) is int else None
            if struct is not None:
                try:
                    event = msgspec.convert(obj, struct)
                except msgspec.ValidationError:
                    pass
                else:
                    if self._cross_field_ok(event, now_ms):
                        return ValidationResult(obj)
        return self._validate_slowly(obj, now_ms)

    def _validate_slowly(self, obj: Any, now_ms: int) -> ValidationResult:
        """Every check, with its reason."""
        if not isinstance(obj, dict):
            return ValidationResult(
                None, (Rejection("not_an_object", "", f"an event must be a JSON object, got {_type_name(obj)}"),)
            )
        version = obj.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool):
            code = "missing_field" if version is None else "wrong_type"
            return ValidationResult(
                None,
                (Rejection(code, "schema_version", f"'schema_version' must be an integer, got {_type_name(version)}"),),
            )
        entry = self._checkers.get(version)
        if entry is None:
            return ValidationResult(
                None,
                (
                    Rejection(
                        "unknown_schema_version",
                        "schema_version",
                        f"schema version {version} is unknown (known: {sorted(self._checkers)})",
                    ),
                ),
            )
        _, checker = entry
        out: list[Rejection] = []
        checker(obj, "", out)
        if not out:
            self._semantic(obj, version, now_ms, out)
        if out:
            return ValidationResult(None, tuple(out))
        return ValidationResult(obj)

    def _semantic(self, obj: dict[str, Any], version: int, now_ms: int, out: list[Rejection]) -> None:
        """The platform's rules, on an event that passed the schema (every event pays for this: keep it lean)."""
        get = obj.get
        event_type = obj["event_type"]
        if event_type not in self._event_types[version]:
            out.append(
                Rejection(
                    "unknown_event_type", "event_type", f"event type {event_type!r} is unknown to schema v{version}"
                )
            )
        event_id = obj["event_id"]
        if len(event_id) != 36 or not _UUID.fullmatch(event_id):
            out.append(Rejection("invalid_uuid", "event_id", f"'event_id' {event_id!r} is not a UUID"))
        ts = obj["timestamp_ms"]
        rules = self.rules
        if ts > now_ms + rules.max_clock_skew_ms:
            out.append(
                Rejection(
                    "future_timestamp",
                    "timestamp_ms",
                    f"'timestamp_ms' is {(ts - now_ms) / 1000:.0f} s ahead of the receiver, beyond the "
                    f"allowed clock skew of {rules.max_clock_skew_ms / 1000:.0f} s",
                )
            )
        elif ts < rules.earliest_ms:
            out.append(
                Rejection(
                    "implausible_timestamp",
                    "timestamp_ms",
                    f"'timestamp_ms' {ts} is before {iso_time(rules.earliest_ms)} (validation.earliest_timestamp)",
                )
            )
        if event_type in CONTENT_EVENT_TYPES and not get("content_id"):
            out.append(Rejection("missing_content_id", "content_id", f"a {event_type} event needs 'content_id'"))
        if event_type == "search" and not get("query"):
            out.append(Rejection("missing_query", "query", "a search event needs a non-empty 'query'"))
        watch = get("watch_seconds")
        if watch is None:
            if event_type in WATCH_EVENT_TYPES:
                out.append(
                    Rejection("missing_watch_seconds", "watch_seconds", f"a {event_type} event needs 'watch_seconds'")
                )
        elif watch < 0:
            out.append(
                Rejection("negative_value", "watch_seconds", f"'watch_seconds' is {watch}, it cannot be negative")
            )
        elif watch > rules.max_watch_seconds:
            out.append(
                Rejection(
                    "out_of_range",
                    "watch_seconds",
                    f"'watch_seconds' is {watch}, above the limit of {rules.max_watch_seconds:g}",
                )
            )
        for name in _NON_NEGATIVE:
            value = get(name)
            if value is not None and value < 0:
                out.append(Rejection("negative_value", name, f"'{name}' is {value}, it cannot be negative"))
        context = obj["context"]
        if context:
            self._context(context, out)

    @staticmethod
    def _context(context: dict[str, Any], out: list[Rejection]) -> None:
        for name in ("row", "position"):
            value = context.get(name)
            if value is not None and value < 0:
                out.append(
                    Rejection("negative_value", f"context.{name}", f"'context.{name}' is {value}, it cannot be below 0")
                )
        propensity = context.get("propensity")
        if propensity is not None and not 0.0 < propensity <= 1.0:
            out.append(
                Rejection(
                    "out_of_range", "context.propensity", f"'context.propensity' is {propensity}, it must be in (0, 1]"
                )
            )
