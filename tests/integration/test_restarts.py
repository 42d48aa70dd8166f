"""What a worker keeps across restarts, and the topic settings recoveries rely on (issue 4)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faust.stores.rocksdb import Store as RocksStore
from rocksdict import Options, Rdict

from streams.kafka import topics
from streams.kafka.group import MEMBER_FILE, end_previous_member
from streams.settings import Settings
from tests.helpers import same_instants
from tests.integration.conftest import JOURNEY, end_offset_sums, produce, read_topic, report_when_counted, wait_for

pytestmark = pytest.mark.timeout(240)

OFFSET_KEY = RocksStore.offset_key  # where a partition's RocksDB says which changelog offset it holds


def configs_of(bootstrap: str, names: list[str]) -> dict[str, dict[str, str]]:
    return topics.topic_configs(bootstrap, names)


def local_stores(data_dir: Path) -> dict[int, dict[bytes, bytes]]:
    """Every partition's RocksDB of the lead table in a stopped worker's data dir, as it is on disk."""
    stores = {}
    for path in data_dir.rglob(f"*{topics.LEADS_TABLE}-*.db"):
        db = Rdict(str(path), options=Options(raw_mode=True))
        try:
            stores[int(path.stem.rsplit("-", 1)[1])] = dict(db.items())
        finally:
            db.close()
    return stores


def stores_beside_changelog(data_dir: Path, bootstrap: str, topic: str, partitions: int) -> dict[int, tuple[int, dict[bytes, bytes], list]]:
    """Per partition: the changelog offset its local store says it holds, its entries, and its changelog."""
    changelog: dict[int, list] = {}
    for message in read_topic(bootstrap, topic, partitions):
        changelog.setdefault(message.partition, []).append(message)
    stores = local_stores(data_dir)
    assert sorted(stores) == sorted(changelog), "one local store per changelog partition"
    return {partition: (int(entries.pop(OFFSET_KEY)), entries, changelog[partition]) for partition, entries in stores.items()}


class TestRestarts:
    def test_a_killed_worker_keeps_a_local_store_its_changelog_vouches_for(self, broker, start_worker, tmp_path: Path, golden_log, expected_report) -> None:
        """After SIGKILL the local store is never deleted: each partition's RocksDB must then
        equal its changelog read up to the offset it says it holds, whatever the kill cut."""
        data = tmp_path / "w"
        produce(broker, golden_log[:900])
        worker = start_worker("1", data_dir=data)
        report_when_counted(worker, 900)
        worker.stop(signal.SIGINT)
        worker = start_worker("2", data_dir=data)
        produce(broker, golden_log[900:])
        report_when_counted(worker, len(golden_log))
        worker.stop(signal.SIGKILL)

        settings = Settings()
        changelog_topic = topics.changelog_topic(settings.app_id, topics.LEADS_TABLE)
        bootstrap = f"{broker.host}:{broker.port}"
        for partition, (held, entries, changelog) in stores_beside_changelog(data, bootstrap, changelog_topic, settings.partitions).items():
            assert held <= changelog[-1].offset
            expected = {m.key: m.value for m in changelog if m.offset <= held}
            assert entries == expected, f"partition {partition}: the local store is not its changelog up to offset {held}"

        worker = start_worker("3", data_dir=data)
        assert same_instants(report_when_counted(worker, len(golden_log)), expected_report)
        reported, corrected = end_offset_sums(broker, changelog_topic, settings.partitions)
        assert reported < corrected, "the changelog went out in batches, so recovery needed its ends corrected"

        # The last batch waits for the next fetch to be written locally; once the worker idles,
        # the store holds its whole changelog, so a restart after a kill has nothing to read.
        time.sleep(3)
        worker.stop(signal.SIGKILL)
        for partition, (held, entries, changelog) in stores_beside_changelog(data, bootstrap, changelog_topic, settings.partitions).items():
            assert held == changelog[-1].offset, f"partition {partition}: an idle worker's store holds its whole changelog"
            assert entries == {m.key: m.value for m in changelog}


    def test_a_killed_workers_group_membership_is_ended_by_the_next_worker_on_its_data_dir(self, broker, start_worker, tmp_path: Path) -> None:
        """Else the group waits for the dead member's session to time out before it settles."""
        data = tmp_path / "w"
        worker = start_worker("1", data_dir=data)
        member = wait_for(lambda: (data / MEMBER_FILE).exists() and (data / MEMBER_FILE).read_text().split()[1], message="the member id is written")
        worker.stop(signal.SIGKILL)
        bootstrap = f"{broker.host}:{broker.port}"
        assert group_members(bootstrap, "journey") == [member], "a killed worker stays a member until its session times out"
        assert end_previous_member(bootstrap, data)
        assert group_members(bootstrap, "journey") == []


def group_members(bootstrap: str, group: str) -> list[str]:
    async def describe() -> list[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            described = await admin.describe_consumer_groups([group])
        finally:
            await admin.close()
        return [member[0] for response in described for found in response.groups for member in found[5]]

    return asyncio.run(describe())


class TestTopicSettings:
    def test_table_topics_are_compacted_and_the_event_log_is_kept(self, broker) -> None:
        done = subprocess.run([JOURNEY, "topics", "--broker", broker.url], capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr.decode()
        changelog = topics.changelog_topic("journey", topics.LEADS_TABLE)
        configs = configs_of(f"{broker.host}:{broker.port}", [changelog, topics.WATERMARKS, topics.EVENTS])
        assert configs[changelog]["cleanup.policy"] == "compact"
        assert configs[topics.WATERMARKS]["cleanup.policy"] == "compact"
        assert configs[topics.EVENTS]["retention.ms"] == "-1"
        assert b"warning" not in done.stderr

    def test_an_existing_changelog_that_deletes_is_warned_about(self, broker) -> None:
        changelog = topics.changelog_topic("journey", topics.LEADS_TABLE)

        async def create() -> None:
            admin = AIOKafkaAdminClient(bootstrap_servers=f"{broker.host}:{broker.port}")
            await admin.start()
            try:
                await admin.create_topics([NewTopic(changelog, 8, 1, topic_configs={"cleanup.policy": "delete"})])
            finally:
                await admin.close()

        asyncio.run(create())
        done = subprocess.run([JOURNEY, "topics", "--broker", broker.url], capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr.decode()
        assert f"warning: topic {changelog} has cleanup.policy=delete" in done.stderr.decode()
