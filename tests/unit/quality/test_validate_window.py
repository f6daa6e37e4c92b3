"""The gate step on files: bad input ends with a clear message, never an exception."""

from pathlib import Path

import pytest

from flywheel.config.simulator import SimulatorConfig
from flywheel.config.training import QualityConfig, TrainingConfig
from flywheel.quality.gate import validate_window
from flywheel.simulator.frames import simulate_window


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("window")
    world = simulate_window(SimulatorConfig(users=40, items=30, days=2, seed=1))
    frame = world.frame
    frame.to_parquet(root / "window.parquet")
    frame.drop(columns=["content_avg_completion_rate"]).to_parquet(root / "missing.parquet")
    frame.iloc[:0].to_parquet(root / "empty.parquet")
    (root / "corrupted.parquet").write_bytes(b"PAR1\x00\x01garbage")
    world.catalog.to_parquet(root / "catalog.parquet")
    return root


CONFIG = TrainingConfig(quality=QualityConfig(min_rows=100))


def _gate(files: Path, name: str, tmp_path: Path):
    return validate_window(
        str(files / name), str(files / "catalog.parquet"), CONFIG, report_dir=tmp_path, use_registry=False
    )


def test_clean_window_passes_and_writes_reports(files: Path, tmp_path: Path) -> None:
    report = _gate(files, "window.parquet", tmp_path)
    assert report.passed, report.summary()
    assert (tmp_path / "quality.md").read_text().startswith("# Data-quality gate")
    assert (tmp_path / "quality.json").exists()


def test_missing_feature_is_named(files: Path, tmp_path: Path) -> None:
    report = _gate(files, "missing.parquet", tmp_path)
    assert not report.passed
    assert "schema: missing column(s): content_avg_completion_rate" in report.summary()


def test_empty_window(files: Path, tmp_path: Path) -> None:
    report = _gate(files, "empty.parquet", tmp_path)
    assert not report.passed and "volume: 0 rows < minimum 100" in report.summary()


def test_corrupted_file_and_missing_file(files: Path, tmp_path: Path) -> None:
    corrupted = _gate(files, "corrupted.parquet", tmp_path)
    assert not corrupted.passed and "is not a readable parquet table" in corrupted.summary()
    missing = _gate(files, "nope.parquet", tmp_path)
    assert not missing.passed and "does not exist" in missing.summary()


def test_stale_window_fails_freshness(files: Path, tmp_path: Path) -> None:
    report = validate_window(
        str(files / "window.parquet"),
        str(files / "catalog.parquet"),
        CONFIG,
        report_dir=tmp_path,
        window_end="2027-01-01T00:00:00",
        use_registry=False,
    )
    assert [c.name for c in report.failures] == ["freshness"]


def test_freshness_reference_prefers_the_window_end() -> None:
    from flywheel.quality.gate import freshness_reference

    info = '{"source": "feature platform", "events_end": "2026-01-12T00:00:00+00:00"}'
    assert freshness_reference("2026-02-01", info) == "2026-02-01"
    assert freshness_reference("", info) == "2026-01-12T00:00:00+00:00"
    assert freshness_reference("", '{"source": "w.parquet"}') == freshness_reference("", "") == ""
