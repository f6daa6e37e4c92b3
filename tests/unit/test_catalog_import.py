"""Bring your own catalog: row-by-row reporting, the written table, the default catalog, Feast repo lookup."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from flywheel.cli.main import app
from flywheel.config import load_config
from flywheel.config.features import feature_repo_location
from flywheel.events.catalog import (
    CatalogOptions,
    default_catalog_path,
    genre_name,
    import_catalog,
    parse_release,
)

MOVIES = """movieId,title,genres,released
1,Toy Story (1995),Adventure|Animation|Children,
2,Jumanji (1995),Adventure|Children|Fantasy,1995-12-15
3,,(no genres listed),
,Nameless (2001),Drama,
2,Jumanji again (1996),Drama,
5,Odd (1999),Drama|Polka,
6,Later,Drama,next spring
"""
VOCAB = tuple(genre_name(g) for g in ("Adventure", "Animation", "Children", "Fantasy", "Drama", "Sci-Fi"))


def _options(**kw: object) -> CatalogOptions:
    base = {"id_col": "movieId", "no_genres_value": "(no genres listed)", "genres": VOCAB, "release_col": "released"}
    return CatalogOptions(**{**base, **kw})  # type: ignore[arg-type]


def test_genre_names_and_release_dates_are_normalised() -> None:
    assert genre_name(" Sci-Fi ") == "sci_fi" and genre_name("Film-Noir") == "film_noir"
    assert parse_release("1995").isoformat() == "1995-01-01T00:00:00+00:00"
    assert parse_release("1995-12-15").isoformat() == "1995-12-15T00:00:00+00:00"


def test_bad_rows_are_reported_by_line_and_nothing_is_written(tmp_path: Path) -> None:
    file = tmp_path / "movies.csv"
    file.write_text(MOVIES)
    out = tmp_path / "catalog.parquet"
    result = import_catalog(file, out=out, options=_options(), errors_file=tmp_path / "errors.csv")
    reasons = {row.line: row.reason for row in result.bad_rows}
    assert sorted(reasons) == [5, 6, 7, 8]
    assert "missing content id" in reasons[5]
    assert "duplicate content id '2' (first on line 3)" in reasons[6]
    assert "unknown genre(s) ['polka']" in reasons[7]
    assert "'next spring' is not a year or an ISO-8601 date" in reasons[8]
    assert not result.written and not out.exists()
    assert (tmp_path / "errors.csv").read_text().count("\n") == 5


def test_allow_bad_rows_writes_the_good_titles(tmp_path: Path) -> None:
    file = tmp_path / "movies.csv"
    file.write_text(MOVIES)
    out = tmp_path / "catalog.parquet"
    result = import_catalog(file, out=out, options=_options(release_col=None), allow_bad_rows=True)
    assert result.written
    catalog = pd.read_parquet(out).set_index("content_id")
    assert list(catalog.index) == ["1", "2", "3", "6"]
    assert list(catalog.loc["1", "genres"]) == ["adventure", "animation", "children"]
    assert list(catalog.loc["3", "genres"]) == []
    # without a release column the year comes from the title; none there -> unknown
    assert catalog.loc["1", "release_ts"] == pd.Timestamp("1995-01-01", tz="UTC")
    assert pd.isna(catalog.loc["6", "release_ts"]) and result.without_release == 2
    assert catalog.loc["1", "synopsis"] == "Toy Story (1995)" and catalog.loc["1", "creator_id"] == "unknown"


def test_cli_import_catalog_then_interactions_counts_absent_titles(tmp_path: Path) -> None:
    config = tmp_path / "flywheel.yaml"
    config.write_text(f"home: {tmp_path}\nfeatures:\n  genres: [adventure, animation, children, fantasy, drama]\n")
    movies = tmp_path / "movies.csv"
    movies.write_text("movieId,title,genres\n1,Toy Story (1995),Adventure\n2,Jumanji (1995),Sci-Fi\n")
    runner = CliRunner()
    refused = runner.invoke(app, ["import-catalog", str(movies), "--config", str(config), "--id-col", "movieId"])
    assert refused.exit_code == 1 and "unknown genre(s) ['sci_fi']" in refused.output
    ok = runner.invoke(
        app, ["import-catalog", str(movies), "--config", str(config), "--id-col", "movieId", "--allow-bad-rows"]
    )
    assert ok.exit_code == 0, ok.output
    root = load_config(config)
    assert default_catalog_path(root) == tmp_path / "catalog" / "catalog.parquet"
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("userId,movieId,timestamp\n1,1,964982703\n1,9,964982704\n2,9,964982705\n")
    args = ["import-interactions", str(ratings), "--config", str(config), "--user-col", "userId"]
    result = runner.invoke(app, [*args, "--item-col", "movieId", "--time-format", "s"])
    assert result.exit_code == 0, result.output
    assert "2 good row(s) name 1 title(s) absent from the catalog" in " ".join(result.output.split())
    assert (tmp_path / "imports" / "ratings.csv.absent-titles.csv").read_text() == "content_id,rows\n9,2\n"


def test_feast_repo_is_found_from_any_working_directory(tmp_path: Path) -> None:
    found = feature_repo_location(Path("feature_repo"), cwd=tmp_path)
    assert found.is_absolute() and (found / "feature_store.yaml").exists()
    (tmp_path / "feature_repo").mkdir()  # a repo of the user's own, under the working directory, wins
    assert feature_repo_location(Path("feature_repo"), cwd=tmp_path) == Path("feature_repo")
