"""Bring your own catalog: a CSV or Parquet file of titles into the catalog the pipelines read.

Each row is one title: an id, and where the file has them a title, genres (one column, values
split on a separator), a release date or year (or the year in the title, ``Toy Story (1995)``),
creators (split like the genres; the first is the ``creator_id`` the models embed) and free
text (description, keywords, tags). The catalog written has the columns the feature platform
and the models read (:data:`flywheel.models.contract.CATALOG`): ``content_id``, ``title``,
``genres`` (normalised: lower case, ``Sci-Fi`` -> ``sci_fi``), ``creator_id``, ``creators``,
``synopsis`` (the title and the free text), ``release_ts`` (UTC; null when unknown) and
``duration_seconds``.

Bad rows are reported as the interaction import reports them (line number, header = line 1,
reason): a missing id, an id seen before (the line of its first occurrence is named), a genre
outside the configured vocabulary (``features.genres``), an unparseable release date. Unless bad
rows are allowed, a file with any bad row writes nothing; with ``allow_bad_rows`` the good rows
are written and the bad ones listed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.events.importer import BadRow, ImportFileError, csv_rows, id_text, is_blank, parquet_rows, write_errors

if TYPE_CHECKING:
    import pandas as pd

    from flywheel.config.models import FlywheelConfig

IMPORTED_CATALOG = Path("catalog") / "catalog.parquet"
"""Where ``flywheel import-catalog`` writes, relative to ``$FLYWHEEL_HOME``."""
UNKNOWN_CREATOR = "unknown"
_TITLE_YEAR = re.compile(r"\((\d{4})\)\s*$")


@dataclass(frozen=True, kw_only=True)
class CatalogOptions:
    """How to read a catalog file (column names are options; None: the file has no such column)."""

    id_col: str = "content_id"
    title_col: str | None = "title"
    genres_col: str | None = "genres"
    genre_separator: str = "|"
    no_genres_value: str = ""
    """A genres value that means "no genres" (MovieLens writes ``(no genres listed)``)."""
    release_col: str | None = None
    """A release date (ISO-8601) or a year; without it, a year in parentheses ending the title."""
    creators_col: str | None = None
    creator_separator: str = "|"
    text_cols: tuple[str, ...] = ()
    """Free-text columns appended to the title in the synopsis."""
    duration_col: str | None = None
    default_duration_seconds: float = 3600.0
    genres: tuple[str, ...] = ()
    """The genre vocabulary (normalised); a genre outside it makes the row bad. Empty: any genre."""


@dataclass(frozen=True, slots=True)
class Title:
    """One good catalog row."""

    line: int
    content_id: str
    title: str
    genres: tuple[str, ...]
    creators: tuple[str, ...]
    synopsis: str
    release: datetime | None
    duration_seconds: float


@dataclass
class CatalogImport:
    """What a catalog import read and wrote."""

    file: Path
    out: Path
    rows: int = 0
    titles: list[Title] = field(default_factory=list)
    bad_rows: list[BadRow] = field(default_factory=list)
    errors_file: Path | None = None
    written: bool = False
    """False when bad rows stopped the import before anything was written."""

    @property
    def without_release(self) -> int:
        """Good titles whose release date is unknown."""
        return sum(t.release is None for t in self.titles)


def genre_name(raw: str) -> str:
    """The normalised form of a genre: lower case, runs of other characters as ``_`` (``Sci-Fi`` -> ``sci_fi``)."""
    return re.sub(r"[^0-9a-z]+", "_", raw.strip().lower()).strip("_")


def parse_release(value: Any) -> datetime:
    """A release moment (UTC) from a year (``1995``), an ISO date or time, or a datetime.

    Raises:
        ValueError: The value is none of these.
    """
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).strip()
    if re.fullmatch(r"\d{4}(\.0)?", text):
        return datetime(int(float(text)), 1, 1, tzinfo=UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"release date {value!r} is not a year or an ISO-8601 date") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _split(value: Any, separator: str) -> list[str]:
    if is_blank(value):
        return []
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(separator) if part.strip()]


def parse_title(line: int, values: dict[str, Any], options: CatalogOptions) -> Title:
    """Check and convert one catalog row (the duplicate-id rule needs the whole file: see :func:`read_catalog`).

    Raises:
        ValueError: The row is bad; the message says why.
    """
    problems: list[str] = []
    raw_id = values.get(options.id_col)
    if is_blank(raw_id):
        problems.append(f"missing content id ({options.id_col})")
    title = (
        "" if options.title_col is None or is_blank(values.get(options.title_col)) else str(values[options.title_col])
    )
    genres: list[str] = []
    if options.genres_col is not None:
        raw = values.get(options.genres_col)
        if not (isinstance(raw, str) and options.no_genres_value and raw.strip() == options.no_genres_value):
            genres = [genre_name(g) for g in _split(raw, options.genre_separator)]
        unknown = sorted({g for g in genres if options.genres and g not in options.genres})
        if unknown:
            problems.append(f"unknown genre(s) {unknown} (features.genres lists the known ones)")
    release: datetime | None = None
    if options.release_col is not None and not is_blank(values.get(options.release_col)):
        try:
            release = parse_release(values[options.release_col])
        except (ValueError, OverflowError) as exc:
            problems.append(str(exc))
    elif options.release_col is None and (match := _TITLE_YEAR.search(title)):
        release = datetime(int(match.group(1)), 1, 1, tzinfo=UTC)
    duration = options.default_duration_seconds
    if options.duration_col is not None and not is_blank(values.get(options.duration_col)):
        try:
            duration = float(values[options.duration_col])
            if not duration > 0:
                problems.append(f"duration {duration:g} is not positive")
        except (TypeError, ValueError):
            problems.append(f"duration {values[options.duration_col]!r} is not a number")
    if problems:
        raise ValueError("; ".join(problems))
    creators = (
        tuple(_split(values.get(options.creators_col), options.creator_separator)) if options.creators_col else ()
    )
    texts = [str(values[c]).strip() for c in options.text_cols if not is_blank(values.get(c))]
    return Title(
        line=line,
        content_id=id_text(raw_id),
        title=title.strip(),
        genres=tuple(dict.fromkeys(genres)),
        creators=creators,
        synopsis=" ".join([title.strip(), *texts]).strip(),
        release=release,
        duration_seconds=duration,
    )


def read_catalog(path: str | Path, options: CatalogOptions, *, out: Path) -> CatalogImport:
    """Read and check every row of a catalog file (CSV, or Parquet by extension).

    Raises:
        ImportFileError: The file is missing, unreadable or lacks a mapped column.
    """
    file = Path(path)
    if not file.is_file():
        raise ImportFileError(f"{file}: no such file")
    is_parquet = file.suffix.lower() in (".parquet", ".pq")
    header, rows = parquet_rows(file) if is_parquet else csv_rows(file)
    wanted = [options.id_col, options.title_col, options.genres_col, options.release_col, options.creators_col]
    wanted += [*options.text_cols, options.duration_col]
    mapped = [c for c in wanted if c]
    missing = [c for c in mapped if c not in header]
    if missing:
        raise ImportFileError(f"{file}: column(s) {missing} not found; the file has {header}")
    result = CatalogImport(file=file, out=out)
    first_line: dict[str, int] = {}
    for line, values in rows():
        result.rows += 1
        width = values.pop("__width__", None)
        try:
            if width:
                raise ValueError(f"malformed CSV row: {width}")
            title = parse_title(line, values, options)
            if title.content_id in first_line:
                raise ValueError(
                    f"duplicate content id {title.content_id!r} (first on line {first_line[title.content_id]})"
                )
        except ValueError as exc:
            result.bad_rows.append(BadRow(line, str(exc), {k: values.get(k) for k in mapped}))
            continue
        first_line[title.content_id] = line
        result.titles.append(title)
    return result


def catalog_frame(titles: Iterable[Title]) -> pd.DataFrame:
    """The catalog table of good titles (the columns listed in the module docstring)."""
    import pandas as pd

    titles = list(titles)
    return pd.DataFrame(
        {
            "content_id": pd.Series([t.content_id for t in titles], dtype=object),
            "title": pd.Series([t.title for t in titles], dtype=object),
            "genres": pd.Series([list(t.genres) for t in titles], dtype=object),
            "creator_id": pd.Series([t.creators[0] if t.creators else UNKNOWN_CREATOR for t in titles], dtype=object),
            "creators": pd.Series([list(t.creators) for t in titles], dtype=object),
            "synopsis": pd.Series([t.synopsis for t in titles], dtype=object),
            "release_ts": pd.to_datetime(pd.Series([t.release for t in titles], dtype=object), utc=True),
            "duration_seconds": pd.Series([t.duration_seconds for t in titles], dtype="float64"),
        }
    )


def import_catalog(
    path: str | Path,
    *,
    out: str | Path,
    options: CatalogOptions | None = None,
    allow_bad_rows: bool = False,
    errors_file: str | Path | None = None,
) -> CatalogImport:
    """Import a catalog file into the parquet catalog at ``out`` (replacing it).

    Returns:
        What was read and written; ``written`` is False when bad rows stopped the import.

    Raises:
        ImportFileError: The file cannot be imported at all, or has no good row.
    """
    result = read_catalog(path, options or CatalogOptions(), out=Path(out))
    if result.bad_rows and errors_file is not None:
        result.errors_file = write_errors(Path(errors_file), result.bad_rows)
    if result.bad_rows and not allow_bad_rows:
        return result
    if not result.titles:
        raise ImportFileError(f"{result.file}: no good row to write ({len(result.bad_rows)} bad)")
    result.out.parent.mkdir(parents=True, exist_ok=True)
    catalog_frame(result.titles).to_parquet(result.out, index=False)
    result.written = True
    return result


def default_catalog_path(root: FlywheelConfig) -> Path | None:
    """The catalog the pipelines read when none is given.

    ``features.catalog_path`` when set, else the imported catalog (``$FLYWHEEL_HOME/catalog/
    catalog.parquet``) when it exists, else the simulator's ground truth when it exists.
    """
    if root.features.catalog_path is not None:
        return root.features.catalog_path
    for candidate in (Path(root.home) / IMPORTED_CATALOG, Path(root.simulator.ground_truth_dir) / "catalog.parquet"):
        if candidate.exists():
            return candidate
    return None


def titles_absent(content_ids: Iterable[str], catalog_path: Path | None) -> set[str] | None:
    """The ids among ``content_ids`` that the catalog at ``catalog_path`` lacks (None: no catalog)."""
    if catalog_path is None or not Path(catalog_path).exists():
        return None
    import pyarrow.parquet as pq

    known = set(pq.read_table(catalog_path, columns=["content_id"]).column("content_id").to_pylist())
    return {str(c) for c in content_ids} - {str(k) for k in known}
