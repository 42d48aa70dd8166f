"""The worker's local tables: trusted after a clean stop, rebuilt from the changelog otherwise.

A table write lands in the local store (RocksDB) at once and reaches the
changelog a moment later. A worker killed in between restarts with local
state its changelog lacks; Faust resumes that changelog from the last
offset it saw acknowledged and never sends those writes again. Any worker
that later recovers the partition from the changelog (a fresh data dir, a
rebalance) would then miss them, while the partition's progress, written
after them, vouches for them. So a worker trusts its local tables only if
the last run stopped with every changelog write acknowledged, and marks
that in the data dir; otherwise it deletes them and recovers from the
changelog, like a worker with a fresh data dir.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import faust

from streams.errors import JourneyError

CLEAN_STOP = "journey-clean-stop"


class DataDirError(JourneyError):
    """The worker's data dir cannot be prepared (permissions, a full disk)."""


class AcknowledgedTable(faust.Table):
    """A Faust table that counts its changelog writes the broker has not acknowledged yet."""

    unacknowledged = 0

    def send_changelog(self, *args: Any, **kwargs: Any) -> Any:
        self.unacknowledged += 1
        return super().send_changelog(*args, **kwargs)

    def _on_changelog_sent(self, fut: Any) -> None:
        super()._on_changelog_sent(fut)  # raises when the send failed: then it stays unacknowledged
        self.unacknowledged -= 1


def open_tables(data_dir: Path, table_dir: Path) -> bool:
    """Before the worker starts: keep the local tables after a clean stop, delete them otherwise.
    True when they were deleted. The mark is removed either way: this run must earn its own."""
    mark = data_dir / CLEAN_STOP
    try:
        clean = mark.exists()
        mark.unlink(missing_ok=True)
        if clean or not table_dir.exists():
            return False
        shutil.rmtree(table_dir)
    except OSError as exc:
        raise DataDirError(f"data dir {data_dir}: cannot prepare the tables: {exc.strerror or exc}") from None
    return True


def close_tables(data_dir: Path, tables: list[AcknowledgedTable]) -> bool:
    """After the worker stopped: mark the local tables trustworthy if the changelog has every write.
    Not being able to write the mark only costs the next start a rebuild."""
    if any(table.unacknowledged for table in tables):
        return False
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / CLEAN_STOP).touch()
    except OSError:
        return False
    return True
