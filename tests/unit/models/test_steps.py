"""The window step: a given file is copied byte for byte (the gate judges it) or cut to its bounds;
a missing one is named."""

from pathlib import Path

import pytest

from flywheel.models.steps import DataError, fetch_window, read_table


def test_given_window_is_copied_unchanged(tmp_path: Path) -> None:
    source = tmp_path / "window.parquet"
    source.write_bytes(b"PAR1 not really parquet")
    info = fetch_window(str(source), "", tmp_path / "out.parquet")
    assert (tmp_path / "out.parquet").read_bytes() == source.read_bytes()
    assert info == {"source": str(source), "start": "", "end": ""}
    with pytest.raises(DataError, match="not a readable parquet table"):
        read_table(str(tmp_path / "out.parquet"), "training window")


def test_missing_window_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.parquet does not exist"):
        fetch_window(str(tmp_path / "nope.parquet"), "", tmp_path / "out.parquet")


def test_feature_platform_without_backfill_says_what_to_run(tmp_path: Path) -> None:
    from flywheel.config.models import FlywheelConfig

    root = FlywheelConfig.model_validate({"home": str(tmp_path), "features": {"data_dir": str(tmp_path / "features")}})
    with pytest.raises(DataError, match="run `flywheel features backfill` first"):
        fetch_window("", root.model_dump_json(), tmp_path / "out.parquet")


def test_given_window_is_cut_to_its_bounds(tmp_path: Path) -> None:
    import pandas as pd

    source = tmp_path / "window.parquet"
    stamps = pd.date_range("2026-01-05", periods=10, freq="D", tz="UTC")
    pd.DataFrame({"event_timestamp": stamps, "click": range(10)}).to_parquet(source)
    info = fetch_window(str(source), "", tmp_path / "out.parquet", start="2026-01-07", end="2026-01-10T00:00:00Z")
    kept = pd.read_parquet(tmp_path / "out.parquet")
    assert kept["click"].tolist() == [2, 3, 4]
    assert info == {"source": str(source), "start": "2026-01-07T00:00:00+00:00", "end": "2026-01-10T00:00:00+00:00"}
    with pytest.raises(DataError, match="is not an ISO time"):
        fetch_window(str(source), "", tmp_path / "out.parquet", start="last tuesday")
