"""Files written whole, then renamed into place."""

from __future__ import annotations

from pathlib import Path

from flywheel.files import replace_text


def test_the_new_text_replaces_the_old_and_no_temporary_file_stays(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    replace_text(path, '{"a": 1}')
    replace_text(path, '{"a": 2}')
    assert path.read_text(encoding="utf-8") == '{"a": 2}'
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
