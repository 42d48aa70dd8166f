"""Lag that operators' tools can see: after a worker has counted a log, group `journey`'s committed offsets
on journey.events reach the end offsets, as an outside kafka-python admin client reads them (issue 30)."""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from streams.kafka import tansu, topics
from streams.tools.synthetic import JourneyGenerator
from tests.integration.conftest import Worker, produce, report_when_counted, wait_for

pytestmark = pytest.mark.timeout(240)
PARTITIONS = 8


def end_offsets(bootstrap: str) -> dict[int, int]:
    """journey.events' end offsets as a tool would see them, corrected for the embedded broker (streams/kafka/tansu.py)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        reported = consumer.end_offsets([TopicPartition(topics.EVENTS, p) for p in range(PARTITIONS)])
    finally:
        consumer.close()
    return {tp.partition: end for tp, end in tansu.corrected_end_offsets_blocking(bootstrap, reported).items()}


def committed(bootstrap: str) -> dict[int, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        if hasattr(admin, "list_consumer_group_offsets"):  # kafka-python 2
            offsets = admin.list_consumer_group_offsets("journey")
        else:  # kafka-python 3 renamed it
            offsets = admin.list_group_offsets({"journey": None})["journey"]
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topics.EVENTS and meta.offset >= 0}


def test_committed_offsets_of_group_journey_reach_the_end_offsets_once_a_log_is_counted(broker, tmp_path, workers) -> None:
    bootstrap = broker.url.removeprefix("kafka://")
    first = list(JourneyGenerator(1500, seed=5, days=30).records())
    produce(broker, first)
    worker = workers(Worker(broker.url, tmp_path / "w1", tmp_path / "w1.log").start()).wait_ready()
    report_when_counted(worker, len(first))
    ends = end_offsets(bootstrap)
    assert sum(ends.values()) == len(first) and all(ends.values())
    wait_for(lambda: committed(bootstrap) == ends, 30, f"committed offsets {ends}")

    more = list(JourneyGenerator(500, seed=6, days=30).records())  # more events while it runs: the commits follow
    produce(broker, more)
    report_when_counted(worker, len(first) + len(more))
    ends = end_offsets(bootstrap)
    wait_for(lambda: committed(bootstrap) == ends, 30, f"committed offsets {ends}")

    # a restart seeks to the progress in its store, not the committed offsets: nothing counted twice or skipped
    worker.stop()
    again = workers(Worker(broker.url, tmp_path / "w1", tmp_path / "w1-again.log").start()).wait_ready()
    report = report_when_counted(again, len(first) + len(more))
    assert sum(report["events"].values()) == len(first) + len(more)
    assert "Traceback" not in worker.tail() + again.tail()
