"""What a worker keeps across restarts, and the topic settings recoveries rely on (issue 4)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.kafka import topics
from streams.live.tables import CLEAN_STOP
from streams.settings import Settings
from tests.helpers import same_instants
from tests.integration.conftest import JOURNEY, end_offset_sums, produce, report_when_counted

pytestmark = pytest.mark.timeout(240)

REBUILT = "did not stop cleanly; its tables are rebuilt from the changelog"


def configs_of(bootstrap: str, names: list[str]) -> dict[str, dict[str, str]]:
    return topics.topic_configs(bootstrap, names)


class TestRestarts:
    def test_a_clean_stop_keeps_the_tables_and_a_kill_has_them_rebuilt(self, broker, start_worker, tmp_path: Path, golden_log, expected_report) -> None:
        data = tmp_path / "w"
        produce(broker, golden_log[:900])
        worker = start_worker("1", data_dir=data)
        report_when_counted(worker, 900)
        worker.stop(signal.SIGINT)
        assert (data / CLEAN_STOP).exists(), "every changelog write was acknowledged, so the stop was clean"

        worker = start_worker("2", data_dir=data)
        assert not (data / CLEAN_STOP).exists(), "a running worker has not earned the mark yet"
        produce(broker, golden_log[900:])
        report_when_counted(worker, len(golden_log))
        worker.stop(signal.SIGKILL)
        assert REBUILT not in worker.tail()

        worker = start_worker("3", data_dir=data)
        assert REBUILT in worker.tail()
        assert same_instants(report_when_counted(worker, len(golden_log)), expected_report)
        settings = Settings()
        reported, corrected = end_offset_sums(broker, topics.changelog_topic(settings.app_id, topics.LEADS_TABLE), settings.partitions)
        assert reported < corrected, "the changelog went out in batches, so recovery needed its ends corrected"


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
