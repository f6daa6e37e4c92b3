"""Bring your own data: turn an interaction file (CSV or Parquet) into schema-v2 events.

Each row names a user, an item and a time, and optionally a rating, a watch fraction and the
item's duration (column names are options). Rows become events as follows, all with
``source = "import:<file name>"``, ``device.type = "other"`` and the row's rating (if any) in
``rating``:

* ``playback.started`` at the row's time, ``position_seconds`` 0, ``duration_seconds`` when
  known. Every good row yields it: an interaction is a play.
* with a watch fraction f: ``playback.completed`` when f >= 0.95, else ``playback.stopped``,
  at time + watch_seconds, with ``watch_seconds = position_seconds = f x duration`` and
  ``duration_seconds = duration`` (the duration column, else ``default_duration_seconds``), so
  that watch_seconds / duration_seconds gives f back.
* with a rating r >= ``like_threshold``: a ``like`` at the row's time.

``session_id`` is ``i`` + 16 hex digits of SHA-256(user, UTC date): one imported session per
user and day. Event ids are UUID-formatted SHA-256 digests of the row's content (user, item,
time in ms, rating, fraction, duration) and the event type, so importing the same data again
(from any file) produces the same ids and the stream's dedup drops the second copy; two rows
with identical content are the same interaction.

Bad rows (missing ids, unparseable or implausible timestamps, ratings or fractions out of
range, non-positive durations) are never skipped silently: each is reported with its line
number (1-based, the header is line 1, so the first data row is line 2; Parquet rows are
numbered the same way) and its reason, in the summary and in an errors CSV. Unless bad rows
are allowed, a file with any bad row writes nothing.
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

from flywheel.events.encoding import right_sized
from flywheel.events.log import EventLog, Message, open_event_log
from flywheel.events.validation import EARLIEST_PLAUSIBLE_MS, iso_time

if TYPE_CHECKING:
    from flywheel.config.models import EventLogConfig

TimeFormat = Literal["auto", "s", "ms", "iso"]
COMPLETION_FRACTION = 0.95
PROGRESS_EVERY = 10_000
_SECONDS_LIMIT = 100_000_000_000
"""In ``auto`` mode, epoch numbers below this are seconds, above it milliseconds."""


class ImportFileError(ValueError):
    """The file cannot be imported at all (unreadable, unknown format, missing column)."""


@dataclass(frozen=True, kw_only=True)
class ImportOptions:
    """How to read an interaction file."""

    user_col: str = "user_id"
    item_col: str = "item_id"
    time_col: str = "timestamp"
    rating_col: str | None = None
    watch_fraction_col: str | None = None
    duration_col: str | None = None
    time_format: TimeFormat = "auto"
    rating_min: float = 0.0
    rating_max: float = 5.0
    like_threshold: float = 4.0
    default_duration_seconds: float = 3600.0
    max_future_ms: int = 300_000
    """Timestamps later than the import time plus this are bad rows (clock skew allowance)."""
    earliest_ms: int = EARLIEST_PLAUSIBLE_MS
    """Timestamps before this (ms since the epoch; ``validation.earliest_timestamp``) are bad rows."""


@dataclass(frozen=True, slots=True)
class Interaction:
    """One good row."""

    line: int
    user_id: str
    content_id: str
    timestamp_ms: int
    rating: float | None
    watch_fraction: float | None
    duration_seconds: float | None


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row that cannot become events, and why."""

    line: int
    reason: str
    values: dict[str, Any]


@dataclass
class ParsedFile:
    """The rows of a file, split into good and bad."""

    rows: int = 0
    good: list[Interaction] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)


@dataclass
class ImportSummary:
    """What an import read and wrote."""

    file: Path
    topic: str
    rows: int = 0
    good_rows: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    events_written: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    errors_file: Path | None = None
    written: bool = False
    """False when bad rows stopped the import before anything was written."""
    absent_titles: Counter[str] = field(default_factory=Counter)
    """Good rows per content id that the catalog lacks (written all the same: the models then
    know such a title by its id and its interactions only). Empty when no catalog was given."""

    @property
    def absent_rows(self) -> int:
        """Good rows whose title is absent from the catalog."""
        return sum(self.absent_titles.values())


def is_blank(value: Any) -> bool:
    """True for a missing cell: None, NaN or a string of spaces."""
    return (
        value is None
        or (isinstance(value, str) and not value.strip())
        or (isinstance(value, float) and math.isnan(value))
    )


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} {value!r} is not a number")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} {value!r} is not a finite number")
    return number


def parse_time(value: Any, time_format: TimeFormat) -> int:
    """Milliseconds since the epoch (UTC) of a time value.

    Args:
        value: A number (epoch seconds or ms), a numeric string, an ISO-8601 string (a time
            without an offset is UTC) or a datetime.
        time_format: ``s``, ``ms``, ``iso``, or ``auto`` (numbers below 1e11 are seconds,
            larger ones milliseconds; other strings ISO-8601).

    Raises:
        ValueError: The value cannot be read in that format.
    """
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)
    text = value.strip() if isinstance(value, str) else value
    if time_format in ("s", "ms") or (time_format == "auto" and not isinstance(text, str)):
        number = _number(text, "timestamp")
        if time_format == "auto":
            return int(number * 1000) if abs(number) < _SECONDS_LIMIT else int(number)
        return int(number * 1000) if time_format == "s" else int(number)
    if time_format == "auto":
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            if math.isfinite(number):
                return int(number * 1000) if abs(number) < _SECONDS_LIMIT else int(number)
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        raise ValueError(f"timestamp {value!r} is not an ISO-8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def parse_row(line: int, values: dict[str, Any], options: ImportOptions, *, now_ms: int) -> Interaction:
    """Check and convert one row.

    Args:
        line: Its line number (header = line 1).
        values: Column name -> raw value.
        options: Column names and limits.
        now_ms: Import time, for the future-timestamp rule.

    Raises:
        ValueError: The row is bad; the message says why.
    """
    problems = []
    user = values.get(options.user_col)
    item = values.get(options.item_col)
    if is_blank(user):
        problems.append(f"missing user id ({options.user_col})")
    if is_blank(item):
        problems.append(f"missing item id ({options.item_col})")
    timestamp = 0
    raw_time = values.get(options.time_col)
    if is_blank(raw_time):
        problems.append(f"missing timestamp ({options.time_col})")
    else:
        try:
            timestamp = parse_time(raw_time, options.time_format)
        except (ValueError, OverflowError, OSError) as exc:
            problems.append(str(exc))
        else:
            if timestamp < options.earliest_ms:
                problems.append(
                    f"timestamp {raw_time!r} is before {iso_time(options.earliest_ms)} (validation.earliest_timestamp)"
                )
            elif timestamp > now_ms + options.max_future_ms:
                problems.append(f"timestamp {raw_time!r} is in the future")
    rating = fraction = duration = None
    if options.rating_col and not is_blank(values.get(options.rating_col)):
        try:
            rating = _number(values[options.rating_col], "rating")
            if not options.rating_min <= rating <= options.rating_max:
                problems.append(f"rating {rating:g} is outside [{options.rating_min:g}, {options.rating_max:g}]")
        except ValueError as exc:
            problems.append(str(exc))
    if options.watch_fraction_col and not is_blank(values.get(options.watch_fraction_col)):
        try:
            fraction = _number(values[options.watch_fraction_col], "watch fraction")
            if not 0.0 <= fraction <= 1.0:
                problems.append(f"watch fraction {fraction:g} is outside [0, 1]")
        except ValueError as exc:
            problems.append(str(exc))
    if options.duration_col and not is_blank(values.get(options.duration_col)):
        try:
            duration = _number(values[options.duration_col], "duration")
            if duration <= 0:
                problems.append(f"duration {duration:g} is not positive")
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise ValueError("; ".join(problems))
    return Interaction(
        line=line,
        user_id=id_text(user),
        content_id=id_text(item),
        timestamp_ms=timestamp,
        rating=rating,
        watch_fraction=fraction,
        duration_seconds=duration,
    )


def id_text(value: Any) -> str:
    """An id cell as text (``12.0`` read from Parquet becomes ``12``)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


Rows = Callable[[], Iterator[tuple[int, dict[str, Any]]]]
"""Opens the file and yields (line number, column -> raw value) per data row."""


def csv_rows(path: Path) -> tuple[list[str], Rows]:
    """The header of a CSV file and a function that yields its rows (a wrong width flagged in ``__width__``)."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        first = next(csv.reader(handle), None)
    if first is None:
        raise ImportFileError(f"{path}: the file is empty (no header line)")
    header = [name.strip() for name in first]

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            next(reader)
            start = reader.line_num + 1
            for record in reader:
                line = start
                start = reader.line_num + 1
                if not record:  # a blank line holds no row
                    continue
                values: dict[str, Any] = dict(zip(header, record, strict=False))
                if len(record) != len(header):
                    values["__width__"] = f"{len(record)} fields, the header has {len(header)}"
                yield line, values

    return header, rows


def parquet_rows(path: Path) -> tuple[list[str], Rows]:
    """The columns of a Parquet file and a function that yields its rows, numbered like CSV lines."""
    import pyarrow.parquet as pq

    try:
        header = list(pq.read_schema(path).names)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for bad files
        raise ImportFileError(f"{path}: not a readable Parquet file: {exc}") from exc

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        line = 2
        with pq.ParquetFile(path) as parquet:
            for batch in parquet.iter_batches(batch_size=65_536):
                for values in batch.to_pylist():
                    yield line, values
                    line += 1

    return header, rows


def iter_rows(path: str | Path, options: ImportOptions, *, now_ms: int) -> Iterator[Interaction | BadRow]:
    """Check every row of a CSV or Parquet file (by extension: .parquet/.pq, else CSV), in order.

    Yields an :class:`Interaction` per good row and a :class:`BadRow` per bad one, reading the
    file as a stream (constant memory).

    Raises:
        ImportFileError: The file is missing, unreadable or lacks a mapped column (raised
            before the first row).
    """
    file = Path(path)
    if not file.is_file():
        raise ImportFileError(f"{file}: no such file")
    is_parquet = file.suffix.lower() in (".parquet", ".pq")
    header, rows = parquet_rows(file) if is_parquet else csv_rows(file)
    wanted = [options.user_col, options.item_col, options.time_col]
    wanted += [c for c in (options.rating_col, options.watch_fraction_col, options.duration_col) if c]
    missing = [c for c in wanted if c not in header]
    if missing:
        raise ImportFileError(f"{file}: column(s) {missing} not found; the file has {header}")

    def checked() -> Iterator[Interaction | BadRow]:
        for line, values in rows():
            width = values.pop("__width__", None)
            try:
                if width:
                    raise ValueError(f"malformed CSV row: {width}")
                yield parse_row(line, values, options, now_ms=now_ms)
            except ValueError as exc:
                yield BadRow(line, str(exc), {k: values.get(k) for k in wanted})

    return checked()


def read_interactions(path: str | Path, options: ImportOptions, *, now_ms: int) -> ParsedFile:
    """Every row of a file, split into good and bad (in memory; see :func:`iter_rows`).

    Raises:
        ImportFileError: The file is missing, unreadable or lacks a mapped column.
    """
    parsed = ParsedFile()
    for row in iter_rows(path, options, now_ms=now_ms):
        parsed.rows += 1
        if isinstance(row, BadRow):
            parsed.bad.append(row)
        else:
            parsed.good.append(row)
    return parsed


def _uuid_from(text: str) -> str:
    digest = bytearray(hashlib.sha256(text.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x40
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def interaction_events(row: Interaction, options: ImportOptions, *, source: str) -> list[dict[str, Any]]:
    """The events of one good row (see the module docstring for the mapping)."""
    day = datetime.fromtimestamp(row.timestamp_ms / 1000, tz=UTC).date().isoformat()
    session = "i" + hashlib.sha256(f"{row.user_id}\x1f{day}".encode()).hexdigest()[:16]
    identity = "\x1f".join(
        str(v)
        for v in (row.user_id, row.content_id, row.timestamp_ms, row.rating, row.watch_fraction, row.duration_seconds)
    )
    duration = row.duration_seconds
    if duration is None and row.watch_fraction is not None:
        duration = options.default_duration_seconds

    def event(kind: str, ts: int, **payload: Any) -> dict[str, Any]:
        return {
            "event_id": _uuid_from(f"{identity}\x1f{kind}"),
            "event_type": kind,
            "schema_version": 2,
            "timestamp_ms": ts,
            "user_id": row.user_id,
            "session_id": session,
            "content_id": row.content_id,
            "device": {
                "type": "other",
                "os": "unknown",
                "app_version": "import",
                "device_id": None,
                "household_id": None,
            },
            "context": {
                "page": None,
                "row": None,
                "position": None,
                "algorithm": None,
                "experiment_id": None,
                "variant": None,
                "propensity": None,
            },
            "watch_seconds": payload.get("watch_seconds"),
            "position_seconds": payload.get("position_seconds"),
            "query": None,
            "duration_seconds": duration,
            "rating": row.rating,
            "source": source,
        }

    events = [event("playback.started", row.timestamp_ms, position_seconds=0.0)]
    if row.watch_fraction is not None and duration is not None:
        watched = round(row.watch_fraction * duration, 3)
        kind = "playback.completed" if row.watch_fraction >= COMPLETION_FRACTION else "playback.stopped"
        events.append(
            event(kind, row.timestamp_ms + int(watched * 1000), watch_seconds=watched, position_seconds=watched)
        )
    if row.rating is not None and row.rating >= options.like_threshold:
        events.append(event("like", row.timestamp_ms))
    return events


def write_errors(path: Path, bad: list[BadRow]) -> Path:
    """Write the bad rows as CSV (line, reason, values as JSON)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["line", "reason", "values"])
        for row in bad:
            writer.writerow([row.line, row.reason, orjson.dumps(row.values, default=str).decode()])
    return path


def import_interactions(
    path: str | Path,
    *,
    log: EventLog | None = None,
    event_log_config: EventLogConfig | None = None,
    topic: str = "events",
    options: ImportOptions | None = None,
    allow_bad_rows: bool = False,
    errors_file: str | Path | None = None,
    now_ms: int | None = None,
    batch_size: int = 50_000,
    progress: Callable[[str, int], None] | None = None,
    known_titles: set[str] | frozenset[str] | None = None,
) -> ImportSummary:
    """Import an interaction file into the events topic.

    Args:
        path: The CSV or Parquet file.
        log: The event log; opened from ``event_log_config`` (and closed) when None.
        event_log_config: An ``EventLogConfig``, used when ``log`` is None.
        topic: The events topic.
        options: Column names and rules (defaults: user_id, item_id, timestamp).
        allow_bad_rows: Write the good rows even when some rows are bad.
        errors_file: Where to write the bad rows (CSV); none is written when every row is good.
        now_ms: The import time for the future-timestamp rule (default: the wall clock).
        batch_size: Messages per ``send_many``.
        progress: Called with (phase, rows done) every 10,000 rows; phase is ``checking``
            (the first pass, when bad rows are not allowed) or ``writing``.
        known_titles: The catalog's content ids: good rows for other titles are counted in
            ``absent_titles`` (and still written). None: no catalog to check against.

    Returns:
        What was read and written; ``written`` is False when bad rows stopped the import.

    Raises:
        ImportFileError: The file cannot be imported at all.
    """
    options = options or ImportOptions()
    file = Path(path)
    now = int(datetime.now(tz=UTC).timestamp() * 1000) if now_ms is None else now_ms
    summary = ImportSummary(file=file, topic=topic)
    if not allow_bad_rows:  # a first pass: any bad row stops the import before anything is written
        for row in iter_rows(file, options, now_ms=now):
            summary.rows += 1
            if isinstance(row, BadRow):
                summary.bad_rows.append(row)
            if progress is not None and summary.rows % PROGRESS_EVERY == 0:
                progress("checking", summary.rows)
        if summary.bad_rows:
            summary.good_rows = summary.rows - len(summary.bad_rows)
            if errors_file is not None:
                summary.errors_file = write_errors(Path(errors_file), summary.bad_rows)
            return summary
        summary.rows = 0
    source = f"import:{file.name}"
    own_log = log is None
    if log is None:
        if event_log_config is None:
            raise ValueError("give either log or event_log_config")
        log = open_event_log(event_log_config)
    try:
        producer = log.producer(topic)
        pending: list[Message] = []
        for row in iter_rows(file, options, now_ms=now):
            summary.rows += 1
            if progress is not None and summary.rows % PROGRESS_EVERY == 0:
                progress("writing", summary.rows)
            if isinstance(row, BadRow):
                summary.bad_rows.append(row)
                continue
            summary.good_rows += 1
            if known_titles is not None and row.content_id not in known_titles:
                summary.absent_titles[row.content_id] += 1
            for event in interaction_events(row, options, source=source):
                summary.by_type[event["event_type"]] += 1
                pending.append((row.user_id, right_sized(orjson.dumps(event)), event["timestamp_ms"]))
            if len(pending) >= batch_size:
                summary.events_written += producer.send_many(pending)
                pending = []
        summary.events_written += producer.send_many(pending)
        producer.flush()
        summary.written = True
    finally:
        if own_log:
            log.close()
    if summary.bad_rows and errors_file is not None:
        summary.errors_file = write_errors(Path(errors_file), summary.bad_rows)
    return summary
