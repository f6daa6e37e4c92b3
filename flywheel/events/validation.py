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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from flywheel.events.schema import EventSchema, schemas

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
EARLIEST_PLAUSIBLE_MS = 0
"""The default lower bound of ``timestamp_ms`` (the Unix epoch: data of any era is plausible)."""
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

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


@dataclass(frozen=True, slots=True)
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


_MISSING = object()


def _generate_fast_check(record: dict[str, Any]) -> Callable[[Any], bool]:
    """Generate straight-line Python that answers "does this pass the schema?" without reasons.

    Most events are valid, so the validator first runs this generated check (no closures, no
    paths, no allocations) and only walks the schema with :func:`_compile_record` to collect
    reasons when it fails. It must never be more lenient than the walk; a property test holds
    the two to the same answer.
    """
    constants: dict[str, Any] = {"_MISSING": _MISSING}
    functions: list[str] = []

    def constant(value: Any) -> str:
        name = f"_C{len(constants)}"
        constants[name] = value
        return name

    def expression(avro_type: Any, var: str) -> str:
        if isinstance(avro_type, list):
            return "(" + " or ".join(expression(t, var) for t in avro_type) + ")"
        if isinstance(avro_type, dict):
            kind = avro_type["type"]
            if kind == "record":
                return f"{record_function(avro_type)}({var})"
            if kind == "enum":
                return f"(type({var}) is str and {var} in {constant(frozenset(avro_type['symbols']))})"
            return expression(kind, var)
        return {
            "string": f"type({var}) is str",
            "int": f"(type({var}) is int and {INT32_MIN} <= {var} <= {INT32_MAX})",
            "long": f"(type({var}) is int and {-(2**63)} <= {var} < {2**63})",
            "double": f"(type({var}) is int or (type({var}) is float and {var} - {var} == 0.0))",
            "float": f"(type({var}) is int or (type({var}) is float and {var} - {var} == 0.0))",
            "boolean": f"type({var}) is bool",
            "null": f"{var} is None",
        }[avro_type]

    def statements(avro_record: dict[str, Any], obj: str, body: list[str], indent: str) -> None:
        """Checks of one record as statements; nested records are inlined (no call per event)."""
        known = constant(frozenset(f["name"] for f in avro_record["fields"]))
        body += [f"{indent}if type({obj}) is not dict or not {known}.issuperset({obj}):", f"{indent}    return False"]
        for field in avro_record["fields"]:
            var = f"v{len(body)}"
            body.append(f"{indent}{var} = {obj}.get({field['name']!r}, _MISSING)")
            field_type = field["type"]
            if isinstance(field_type, dict) and field_type["type"] == "record" and "default" not in field:
                body += [f"{indent}if {var} is _MISSING:", f"{indent}    return False"]
                statements(field_type, var, body, indent)
                continue
            check = expression(field_type, var)
            if "default" in field:
                body.append(f"{indent}if {var} is not _MISSING and not {check}:")
            else:
                body.append(f"{indent}if {var} is _MISSING or not {check}:")
            body.append(f"{indent}    return False")

    def record_function(avro_record: dict[str, Any]) -> str:
        name = f"_check_{len(functions)}"
        functions.append("")  # reserve the slot so records nested in unions get later numbers
        slot = len(functions) - 1
        body = [f"def {name}(o):"]
        statements(avro_record, "o", body, "    ")
        body.append("    return True")
        functions[slot] = "\n".join(body)
        return name

    entry = record_function(record)
    namespace = dict(constants)
    exec("\n\n".join(functions), namespace)  # noqa: S102 - code generated from our own schema
    check: Callable[[Any], bool] = namespace[entry]
    return check


class EventValidator:
    """Validates events against the schema version each declares, plus the semantic rules."""

    def __init__(self, *, rules: ValidationRules | None = None) -> None:
        self.rules = rules or ValidationRules()
        self._checkers: dict[int, tuple[EventSchema, Checker]] = {
            version: (schema, _compile_record(schema.parsed)) for version, schema in schemas().items()
        }
        self._fast: dict[int, Callable[[Any], bool]] = {
            version: _generate_fast_check(schema.parsed) for version, schema in schemas().items()
        }

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

    def validate(self, obj: Any, *, now_ms: int) -> ValidationResult:
        """Validate a decoded event. Never raises."""
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
        schema, checker = entry
        out: list[Rejection] = []
        if not self._fast[version](obj):
            checker(obj, "", out)
        if not out:
            self._semantic(obj, schema, now_ms, out)
        return ValidationResult(None if out else obj, tuple(out))

    def _semantic(self, obj: dict[str, Any], schema: EventSchema, now_ms: int, out: list[Rejection]) -> None:
        event_type = obj["event_type"]
        if event_type not in schema.event_types:
            out.append(
                Rejection(
                    "unknown_event_type",
                    "event_type",
                    f"event type {event_type!r} is unknown to schema v{schema.version}",
                )
            )
        if not _UUID.fullmatch(obj["event_id"]):
            out.append(Rejection("invalid_uuid", "event_id", f"'event_id' {obj['event_id']!r} is not a UUID"))
        ts = obj["timestamp_ms"]
        if ts > now_ms + self.rules.max_clock_skew_ms:
            out.append(
                Rejection(
                    "future_timestamp",
                    "timestamp_ms",
                    f"'timestamp_ms' is {(ts - now_ms) / 1000:.0f} s ahead of the receiver, beyond the "
                    f"allowed clock skew of {self.rules.max_clock_skew_ms / 1000:.0f} s",
                )
            )
        elif ts < self.rules.earliest_ms:
            out.append(
                Rejection(
                    "implausible_timestamp",
                    "timestamp_ms",
                    f"'timestamp_ms' {ts} is before {iso_time(self.rules.earliest_ms)} (validation.earliest_timestamp)",
                )
            )
        if event_type in CONTENT_EVENT_TYPES and not obj.get("content_id"):
            out.append(Rejection("missing_content_id", "content_id", f"a {event_type} event needs 'content_id'"))
        if event_type == "search" and not obj.get("query"):
            out.append(Rejection("missing_query", "query", "a search event needs a non-empty 'query'"))
        watch = obj.get("watch_seconds")
        if watch is None:
            if event_type in WATCH_EVENT_TYPES:
                out.append(
                    Rejection("missing_watch_seconds", "watch_seconds", f"a {event_type} event needs 'watch_seconds'")
                )
        elif watch < 0:
            out.append(
                Rejection("negative_value", "watch_seconds", f"'watch_seconds' is {watch}, it cannot be negative")
            )
        elif watch > self.rules.max_watch_seconds:
            out.append(
                Rejection(
                    "out_of_range",
                    "watch_seconds",
                    f"'watch_seconds' is {watch}, above the limit of {self.rules.max_watch_seconds:g}",
                )
            )
        for name in ("position_seconds", "duration_seconds", "rating"):
            value = obj.get(name)
            if value is not None and value < 0:
                out.append(Rejection("negative_value", name, f"'{name}' is {value}, it cannot be negative"))
        context = obj["context"]
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
