"""State that survives a reset broker (issue 30): a worker restarted on its old data dir against a broker
that came back empty (the embedded broker keeps nothing across a restart, as a wiped or new Kafka cluster
would) wipes the state the broker no longer backs, says so in one line, and answers for the new log only."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from projections import Projector, default_definitions
from streams.kafka import topics
from streams.kafka.tansu import CLUSTER_ID
from streams.live.resync import CLUSTER_FILE
from streams.net import free_port
from streams.tools.broker import EmbeddedBroker
from streams.tools.synthetic import JourneyGenerator
from tests.helpers import same_instants
from tests.integration.conftest import Worker, produce, report_when_counted, written_locally

pytestmark = pytest.mark.timeout(300)
WIPED = "wiped the local"


def replayed(records: list[bytes]) -> dict:
    projector = Projector()
    projector.feed_all(records)
    return projector.report(default_definitions())


def count_on(broker: EmbeddedBroker, records: list[bytes], data_dir: Path, log: Path, workers) -> dict:
    """A worker on `data_dir` counts everything produced, and is stopped; its report."""
    worker = workers(Worker(broker.url, data_dir, log).start()).wait_ready(timeout=120)
    report = report_when_counted(worker, len(records), timeout=120)
    written_locally(worker, broker.url.removeprefix("kafka://"))  # counted is not yet written: the last batch waits
    worker.stop()
    return report


@pytest.mark.parametrize("cluster_id", [CLUSTER_ID, "tansu_cluster"], ids=["same-cluster-id", "another-cluster-id"])
def test_a_worker_whose_broker_came_back_empty_rebuilds_and_answers_for_the_new_log_only(tmp_path, workers, cluster_id) -> None:
    """Same cluster id (the embedded broker always has it): each partition's changelog ends before its stored
    offset, so each is wiped. Another id: the whole table directory is wiped."""
    port, data_dir = free_port(), tmp_path / "w1"
    old, new = list(JourneyGenerator(1200, seed=21, days=30).records()), list(JourneyGenerator(700, seed=22, days=30).records())
    with EmbeddedBroker(port, log=tmp_path / "broker-1.log") as broker:
        produce(broker, old)
        assert same_instants(count_on(broker, old, data_dir, tmp_path / "before.log", workers), replayed(old))
    assert (data_dir / CLUSTER_FILE).read_text().strip() == CLUSTER_ID

    with EmbeddedBroker(port, log=tmp_path / "broker-2.log", cluster_id=cluster_id) as broker:  # same port, nothing kept
        produce(broker, new)
        report = count_on(broker, new, data_dir, tmp_path / "after.log", workers)
        assert same_instants(report, replayed(new))
        after = (tmp_path / "after.log").read_text()
        said = [line for line in after.splitlines() if WIPED in line]
        assert len(said) == 1 and "WARNING" in said[0], after
        assert ("another Kafka cluster" in said[0]) == (cluster_id != CLUSTER_ID), said
        assert "Traceback" not in after and "ConsistencyError" not in after, after
        assert (data_dir / CLUSTER_FILE).read_text().strip() == cluster_id

        # from now on the state matches the broker: a restart wipes nothing and counts nothing twice
        report = count_on(broker, new, data_dir, tmp_path / "again.log", workers)
        assert same_instants(report, replayed(new))
        assert WIPED not in (tmp_path / "again.log").read_text()


def test_a_changelog_recreated_empty_on_the_same_broker_wipes_the_partitions_it_no_longer_backs(broker, tmp_path, workers) -> None:
    """The per-partition case on a broker that kept journey.events: each partition whose changelog now ends
    before its stored offset is wiped and rebuilt from journey.events; the report equals replay of the log."""
    records = list(JourneyGenerator(1000, seed=23, days=30).records())
    produce(broker, records)
    data_dir = tmp_path / "w1"
    count_on(broker, records, data_dir, tmp_path / "before.log", workers)
    changelog = topics.changelog_topic("journey", topics.LEADS_TABLE)

    async def recreate() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=f"{broker.host}:{broker.port}")
        await admin.start()
        try:
            await admin.delete_topics([changelog])
            await asyncio.sleep(1)
            await admin.create_topics([NewTopic(changelog, 8, 1, topic_configs={"cleanup.policy": "compact"})])
        finally:
            await admin.close()

    asyncio.run(recreate())
    report = count_on(broker, records, data_dir, tmp_path / "after.log", workers)
    assert same_instants(report, replayed(records))
    after = (tmp_path / "after.log").read_text()
    said = [line for line in after.splitlines() if WIPED in line]
    assert len(said) == 1 and f"past the end of {changelog} (0: " in said[0], after
    assert "Traceback" not in after, after
