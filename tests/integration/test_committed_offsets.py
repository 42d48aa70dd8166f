"""Lag that operators' tools can see: after a worker has counted a log, group `journey`'s committed offsets
on journey.events reach the end offsets, as an outside kafka-python admin client reads them (issue 30)."""

from __future__ import annotations

import pytest

from streams.kafka import topics
from streams.tools.synthetic import JourneyGenerator
from tests.integration.conftest import Worker, committed, end_offsets, produce, report_when_counted, wait_for

pytestmark = pytest.mark.timeout(240)


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
    identity = topics.identity_topic("journey")  # read beside journey.events by the same group: its lag is visible too
    assert committed(bootstrap, identity) == end_offsets(bootstrap, topic=identity)

    # a restart seeks to the progress in its store, not the committed offsets: nothing counted twice or skipped
    worker.stop()
    again = workers(Worker(broker.url, tmp_path / "w1", tmp_path / "w1-again.log").start()).wait_ready()
    report = report_when_counted(again, len(first) + len(more))
    assert sum(report["events"].values()) == len(first) + len(more)
    assert "Traceback" not in worker.tail() + again.tail()
