"""Local tables are kept only after a clean stop (streams/tables.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from streams.live.tables import CLEAN_STOP, DataDirError, close_tables, open_tables


def tables_in(data: Path) -> Path:
    tables = data / "v1" / "tables"
    (tables / "leads-0.db").mkdir(parents=True)
    (tables / "leads-0.db" / "CURRENT").write_text("x")
    return tables


class TestCleanStop:
    def test_tables_without_the_mark_are_deleted(self, tmp_path: Path) -> None:
        tables = tables_in(tmp_path)
        assert open_tables(tmp_path, tables) is True
        assert not tables.exists()

    def test_tables_with_the_mark_are_kept_and_the_mark_is_spent(self, tmp_path: Path) -> None:
        tables = tables_in(tmp_path)
        (tmp_path / CLEAN_STOP).touch()
        assert open_tables(tmp_path, tables) is False
        assert (tables / "leads-0.db" / "CURRENT").exists()
        assert not (tmp_path / CLEAN_STOP).exists()

    def test_a_first_start_has_nothing_to_delete(self, tmp_path: Path) -> None:
        assert open_tables(tmp_path / "new", tmp_path / "new" / "v1" / "tables") is False

    def test_the_mark_needs_every_changelog_write_acknowledged(self, tmp_path: Path) -> None:
        assert close_tables(tmp_path, [SimpleNamespace(unacknowledged=2)]) is False  # type: ignore[list-item]  # all close_tables reads
        assert not (tmp_path / CLEAN_STOP).exists()
        assert close_tables(tmp_path, [SimpleNamespace(unacknowledged=0)]) is True  # type: ignore[list-item]  # all close_tables reads
        assert (tmp_path / CLEAN_STOP).exists()

    def test_a_data_dir_that_cannot_be_prepared_is_a_clear_error(self, tmp_path: Path) -> None:
        blocker = tmp_path / "file"
        blocker.write_text("not a directory")
        with pytest.raises(DataDirError, match="cannot prepare the tables"):
            open_tables(blocker, blocker / "v1" / "tables")
