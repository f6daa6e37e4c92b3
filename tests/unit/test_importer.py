"""Bring your own data: interaction files (CSV, Parquet) become schema-v2 events."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from flywheel.cli.main import app
from flywheel.config.models import EventLogConfig, LocalLogConfig
from flywheel.events.importer import (
    ImportFileError,
    ImportOptions,
    import_interactions,
    parse_time,
    read_interactions,
)
from flywheel.events.local_log import LocalEventLog
from flywheel.events.validation import EventValidator

NOW = 1_800_000_000_000  # 2027-01-15
T0 = 1_700_000_000  # 2023-11-14, epoch seconds


def log_config(folder: Path) -> EventLogConfig:
    return EventLogConfig(partitions=2, local=LocalLogConfig(path=folder / "log"))


def read_log(folder: Path) -> list[dict[str, Any]]:
    log = LocalEventLog(folder / "log", partitions=2)
    if "events" not in log.topics():
        return []
    return [orjson.loads(r.value) for p in range(2) for r in log.read("events", p, 0, 10**6)]


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text.lstrip("\n"), encoding="utf-8")
    return path


GOOD_CSV = f"""
user,movie,ts,stars,frac
alice,m1,{T0},4.5,0.97
alice,m2,{T0 + 60},2,0.30
bob,m1,{T0 + 120},,
"""


def test_good_csv_becomes_valid_events_with_the_documented_mapping(tmp_path: Path) -> None:
    file = write_csv(tmp_path / "ratings.csv", GOOD_CSV)
    options = ImportOptions(
        user_col="user", item_col="movie", time_col="ts", rating_col="stars", watch_fraction_col="frac"
    )
    summary = import_interactions(file, event_log_config=log_config(tmp_path), options=options, now_ms=NOW)
    assert summary.written and summary.rows == 3 and summary.good_rows == 3 and not summary.bad_rows
    assert summary.by_type == {"playback.started": 3, "playback.completed": 1, "playback.stopped": 1, "like": 1}
    events = read_log(tmp_path)
    assert len(events) == summary.events_written == 6
    validator = EventValidator()
    assert all(validator.validate(e, now_ms=NOW).ok for e in events)
    assert {e["source"] for e in events} == {"import:ratings.csv"}
    stopped = next(e for e in events if e["event_type"] == "playback.stopped")
    assert stopped["user_id"] == "alice" and stopped["content_id"] == "m2" and stopped["rating"] == 2.0
    assert stopped["watch_seconds"] / stopped["duration_seconds"] == pytest.approx(0.30)
    assert stopped["timestamp_ms"] == (T0 + 60) * 1000 + int(stopped["watch_seconds"] * 1000)
    like = next(e for e in events if e["event_type"] == "like")
    assert (like["user_id"], like["content_id"], like["rating"]) == ("alice", "m1", 4.5)
    bob = [e for e in events if e["user_id"] == "bob"]
    assert [e["event_type"] for e in bob] == ["playback.started"] and bob[0]["rating"] is None
    sessions = {e["session_id"] for e in events if e["user_id"] == "alice"}
    assert len(sessions) == 1


def test_reimport_gives_the_same_event_ids(tmp_path: Path) -> None:
    file = write_csv(tmp_path / "a.csv", GOOD_CSV)
    copy = write_csv(tmp_path / "b.csv", GOOD_CSV)
    options = ImportOptions(
        user_col="user", item_col="movie", time_col="ts", rating_col="stars", watch_fraction_col="frac"
    )
    import_interactions(file, event_log_config=log_config(tmp_path / "1"), options=options, now_ms=NOW)
    import_interactions(copy, event_log_config=log_config(tmp_path / "2"), options=options, now_ms=NOW)
    first = sorted(e["event_id"] for e in read_log(tmp_path / "1"))
    second = sorted(e["event_id"] for e in read_log(tmp_path / "2"))
    assert first == second and len(set(first)) == len(first)


BAD_CSV = f"""
user_id,item_id,timestamp,rating,watch_fraction
u1,i1,{T0},3,0.5
,i2,{T0},3,0.5
u3,,{T0},3,0.5
u4,i4,yesterday,3,0.5
u5,i5,{T0},7,0.5
u6,i6,{T0},3,1.5
u7,"item
with a newline",{T0},3,0.5
u8,i8,{T0},3,abc
u9,i9,{T0}
u10,i10,{T0 + 10},5,1.0
u11,i11,1999-12-31T23:00:00,1,0
u12,i12,2090-01-01T00:00:00Z,1,0
"""


Y2K_MS = 946_684_800_000  # 2000-01-01T00:00:00Z


def _bad_options() -> ImportOptions:
    return ImportOptions(rating_col="rating", watch_fraction_col="watch_fraction", earliest_ms=Y2K_MS)


def test_bad_rows_are_reported_with_exact_line_numbers_and_nothing_is_written(tmp_path: Path) -> None:
    file = write_csv(tmp_path / "bad.csv", BAD_CSV)
    errors = tmp_path / "errors.csv"
    summary = import_interactions(
        file, event_log_config=log_config(tmp_path), options=_bad_options(), errors_file=errors, now_ms=NOW
    )
    lines = {row.line: row.reason for row in summary.bad_rows}
    assert sorted(lines) == [3, 4, 5, 6, 7, 10, 11, 13, 14]
    assert "missing user id" in lines[3]
    assert "missing item id" in lines[4]
    assert "yesterday" in lines[5]
    assert "rating 7" in lines[6]
    assert "watch fraction 1.5" in lines[7]
    assert "not a number" in lines[10]
    assert "malformed CSV row" in lines[11]
    assert "before 2000-01-01T00:00:00Z (validation.earliest_timestamp)" in lines[13]
    assert "future" in lines[14]
    assert summary.rows == 12 and summary.good_rows == 3  # lines 2, 8-9 (quoted newline) and 12
    assert not summary.written and summary.events_written == 0 and read_log(tmp_path) == []
    with errors.open(newline="") as handle:
        reported = list(csv.DictReader(handle))
    assert [int(r["line"]) for r in reported] == sorted(lines)
    assert orjson.loads(reported[0]["values"])["item_id"] == "i2"


def test_allow_bad_rows_writes_the_good_rows_and_still_lists_the_bad(tmp_path: Path) -> None:
    file = write_csv(tmp_path / "bad.csv", BAD_CSV)
    summary = import_interactions(
        file, event_log_config=log_config(tmp_path), options=_bad_options(), allow_bad_rows=True, now_ms=NOW
    )
    assert summary.written and len(summary.bad_rows) == 9
    users = {e["user_id"] for e in read_log(tmp_path)}
    assert users == {"u1", "u7", "u10"}
    assert {e["content_id"] for e in read_log(tmp_path) if e["user_id"] == "u7"} == {"item\nwith a newline"}


def _parquet(path: Path, columns: dict[str, list[Any]]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def test_parquet_good_and_bad_rows_with_line_numbers(tmp_path: Path) -> None:
    base = datetime(2024, 3, 1, 12, tzinfo=UTC)
    file = _parquet(
        tmp_path / "plays.parquet",
        {
            "uid": [1, 2, None, 4, 5],
            "iid": ["a", "b", "c", None, "e"],
            "when": [base, base, base, base, base],
            "wf": [0.2, 0.99, 0.5, 0.5, -0.1],
            "dur": [100.0, 50.0, 10.0, 10.0, 10.0],
        },
    )
    options = ImportOptions(
        user_col="uid", item_col="iid", time_col="when", watch_fraction_col="wf", duration_col="dur"
    )
    summary = import_interactions(
        file, event_log_config=log_config(tmp_path), options=options, allow_bad_rows=True, now_ms=NOW
    )
    assert [(r.line, r.reason.split(" (")[0]) for r in summary.bad_rows] == [
        (4, "missing user id"),
        (5, "missing item id"),
        (6, "watch fraction -0.1 is outside [0, 1]"),
    ]
    events = read_log(tmp_path)
    assert summary.by_type == {"playback.started": 2, "playback.stopped": 1, "playback.completed": 1}
    stopped = next(e for e in events if e["event_type"] == "playback.stopped")
    assert stopped["user_id"] == "1" and stopped["watch_seconds"] == 20.0 and stopped["duration_seconds"] == 100.0
    assert stopped["timestamp_ms"] == int(base.timestamp() * 1000) + 20_000


def test_missing_column_is_an_error_naming_the_columns(tmp_path: Path) -> None:
    file = write_csv(tmp_path / "x.csv", "user_id,item,timestamp\nu,i,1700000000\n")
    with pytest.raises(ImportFileError, match=r"\['item_id'\].*\['user_id', 'item', 'timestamp'\]"):
        read_interactions(file, ImportOptions(), now_ms=NOW)


def test_time_formats(tmp_path: Path) -> None:
    file = write_csv(
        tmp_path / "t.csv",
        "user_id,item_id,timestamp\nu,i,1700000000000\nu,i,2023-11-14T22:13:20+00:00\nu,i,2023-11-14 22:13:20\n",
    )
    ms = read_interactions(file, ImportOptions(time_format="ms"), now_ms=NOW)
    assert [r.timestamp_ms for r in ms.good] == [1_700_000_000_000] and [b.line for b in ms.bad] == [3, 4]
    auto = read_interactions(file, ImportOptions(), now_ms=NOW)
    assert [r.timestamp_ms for r in auto.good] == [1_700_000_000_000] * 3
    iso = read_interactions(file, ImportOptions(time_format="iso"), now_ms=NOW)
    assert [b.line for b in iso.bad] == [2]


@given(st.integers(946_684_800, 4_000_000_000))
def test_parse_time_round_trips_epoch_seconds_millis_and_iso(seconds: int) -> None:
    iso = datetime.fromtimestamp(seconds, tz=UTC).isoformat()
    assert parse_time(str(seconds), "s") == seconds * 1000
    assert parse_time(seconds * 1000, "ms") == seconds * 1000
    assert parse_time(iso, "iso") == seconds * 1000
    assert parse_time(str(seconds), "auto") == parse_time(str(seconds * 1000), "auto") == seconds * 1000


def _cli_config(tmp_path: Path) -> Path:
    config = tmp_path / "flywheel.yaml"
    config.write_text(f"home: {tmp_path}\nevent_log:\n  partitions: 2\n  local: {{path: {tmp_path / 'log'}}}\n")
    return config


def test_historical_rows_are_good_by_default(tmp_path: Path) -> None:
    # MovieLens-style: epoch seconds from 1996
    file = write_csv(tmp_path / "old.csv", "user_id,item_id,timestamp\nu1,i1,828124615\nu2,i2,964982703\n")
    summary = import_interactions(file, event_log_config=log_config(tmp_path), options=ImportOptions(), now_ms=NOW)
    assert summary.written and not summary.bad_rows
    assert sorted(e["timestamp_ms"] for e in read_log(tmp_path)) == [828_124_615_000, 964_982_703_000]
    assert all(EventValidator().validate(e, now_ms=NOW).ok for e in read_log(tmp_path))


def test_cli_exits_non_zero_on_bad_rows_unless_allowed(tmp_path: Path) -> None:
    file = write_csv(tmp_path / "bad.csv", BAD_CSV)
    config = _cli_config(tmp_path)
    with config.open("a") as handle:  # the configured bound reaches the CLI: line 13 (1999) is bad
        handle.write("validation:\n  earliest_timestamp: 2000-01-01T00:00:00Z\n")
    args = [
        "import-interactions",
        str(file),
        "--config",
        str(config),
        "--rating-col",
        "rating",
        "--watch-fraction-col",
        "watch_fraction",
    ]
    runner = CliRunner()
    refused = runner.invoke(app, args)
    assert refused.exit_code == 1
    assert "nothing was written" in refused.output
    assert (tmp_path / "imports" / "bad.csv.errors.csv").exists()
    assert read_log(tmp_path) == []
    allowed = runner.invoke(app, [*args, "--allow-bad-rows"])
    assert allowed.exit_code == 0, allowed.output
    assert "bad rows" in allowed.output
    assert len({e["user_id"] for e in read_log(tmp_path)}) == 3


def test_cli_good_file_with_mapped_columns(tmp_path: Path) -> None:
    file = write_csv(tmp_path / "good.csv", GOOD_CSV)
    args = [
        "import-interactions",
        str(file),
        "--config",
        str(_cli_config(tmp_path)),
        "--user-col",
        "user",
        "--item-col",
        "movie",
        "--time-col",
        "ts",
        "--rating-col",
        "stars",
        "--watch-fraction-col",
        "frac",
        "--time-format",
        "s",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(read_log(tmp_path)) == 6


_DEFECTS = {
    "missing_user": lambda r: {**r, "user_id": ""},
    "missing_item": lambda r: {**r, "item_id": " "},
    "bad_time": lambda r: {**r, "timestamp": "not-a-time"},
    "old_time": lambda r: {**r, "timestamp": "1969-12-31T00:00:00Z"},
    "rating_high": lambda r: {**r, "rating": "5.5"},
    "rating_text": lambda r: {**r, "rating": "five"},
    "fraction_negative": lambda r: {**r, "watch_fraction": "-0.01"},
}


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([None, *_DEFECTS]),
            st.integers(0, 10**8),
            st.floats(0, 5),
            st.floats(0, 1),
            st.text(alphabet='abc ,"\n', min_size=1, max_size=6),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_any_mix_of_good_and_bad_rows_reports_exactly_the_bad_lines(tmp_path_factory: Any, rows: list[Any]) -> None:
    folder = tmp_path_factory.mktemp("prop")
    file = folder / "mixed.csv"
    expected_bad = []
    with file.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["user_id", "item_id", "timestamp", "rating", "watch_fraction"])
        writer.writeheader()
        line = 2
        for defect, offset, rating, fraction, item in rows:
            row = {
                "user_id": f"u{offset % 97}",
                "item_id": item if item.strip() else "x",
                "timestamp": str(T0 + offset),
                "rating": repr(rating),
                "watch_fraction": repr(fraction),
            }
            if defect is not None:
                row = _DEFECTS[defect](row)
                expected_bad.append(line)
            writer.writerow(row)
            line += 1 + sum(value.count("\n") for value in row.values())
    parsed = read_interactions(file, _bad_options(), now_ms=NOW)
    assert [b.line for b in parsed.bad] == expected_bad
    assert parsed.rows == len(rows) and len(parsed.good) == len(rows) - len(expected_bad)
