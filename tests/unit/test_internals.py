"""The worker's reach into Faust and aiokafka (streams/live/internals.py) is pinned and checked:
another version, or a moved internal, is refused at start in one line, not found out later."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from faust.stores.rocksdb import Store as RocksStore
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from streams.live import internals

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def pins() -> dict[str, str]:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    found = {}
    for requirement in dependencies:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([0-9.]+)", requirement.split(";")[0].strip())
        if match:
            found[match[1]] = match[2]
    return found


class TestPinnedInternals:
    def test_every_package_whose_internals_are_reached_into_is_pinned_exactly_at_the_version_written_for(self) -> None:
        assert {package: pins().get(package) for package in internals.WRITTEN_FOR} == internals.WRITTEN_FOR

    def test_this_install_passes_the_check(self) -> None:
        internals.check()

    def test_another_version_is_refused_in_one_line_naming_the_version_written_for(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(internals.WRITTEN_FOR, "faust-streaming", "0.99.0")
        with pytest.raises(internals.FrameworkMismatch) as refused:
            internals.check()
        message = str(refused.value)
        assert "faust-streaming==0.99.0" in message and "this install has faust-streaming 0.15.3" in message and "\n" not in message

    @pytest.mark.parametrize(
        ("owner", "name", "named"),
        [
            (RocksStore, "_db_for_partition", "_db_for_partition"),
            (AIOKafkaConsumerThread, "_highwaters", "_highwaters"),
            (AIOKafkaConsumerThread, "_create_worker_consumer", "_create_worker_consumer"),
        ],
    )
    def test_a_moved_internal_is_refused_naming_it(self, monkeypatch: pytest.MonkeyPatch, owner: type, name: str, named: str) -> None:
        monkeypatch.delattr(owner, name)
        with pytest.raises(internals.FrameworkMismatch, match=named):
            internals.check()

    def test_a_changed_signature_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(RocksStore, "_db_for_partition", lambda self, partition, create=True: None)
        with pytest.raises(internals.FrameworkMismatch, match="_db_for_partition"):
            internals.check()

    def test_a_table_manager_whose_start_no_longer_waits_its_second_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """PromptTableManager drops Faust's 1 s grace: if Faust's on_start does something else, the replacement would skip it."""
        from faust.tables import TableManager

        async def on_start(self) -> None:
            await self._update_channels()
            await self.recovery.start()
            await self.something_new()

        monkeypatch.setattr(TableManager, "on_start", on_start)
        with pytest.raises(internals.FrameworkMismatch, match=r"TableManager\.on_start"):
            internals.check()
