"""A worker killed with SIGKILL leaves its changelog cut wherever its producer had got to;
a worker started with a fresh data dir recovers from that cut. So every cut of a
real changelog must be a state from which reading the rest of the log again
ends equal to replay (issue 4).

The worker writes a partition's leads and then its progress into one changelog
partition; the broker keeps their order, so a cut never holds progress that
vouches for a lead write it lacks. The last test shows the check notices when
that order is broken, as it was when progress had a table of its own.
"""

from __future__ import annotations

import random
import signal
from collections import defaultdict
from typing import Any

import pytest

from projections import Projector, default_definitions
from projections.live import BatchResult, LiveProjection, Record
from projections.stored import progress_partition
from streams.kafka import topics
from streams.kafka.address import KafkaSource
from streams.kafka.reader import kafka_messages
from streams.live.partial import Partial, merge
from streams.tools.synthetic import JourneyGenerator
from tests.helpers import raw, same_instants
from tests.integration.conftest import produce, report_when_counted

pytestmark = pytest.mark.timeout(300)

Log = dict[int, list[tuple[Any, Any]]]  # per partition, in offset order


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[bytes], Log, Log]:
    """A real worker's changelog, and the events it came from, once for the module."""
    from streams.net import free_port
    from streams.tools.broker import EmbeddedBroker
    from tests.integration.conftest import Worker

    tmp = tmp_path_factory.mktemp("cuts")
    records = list(JourneyGenerator(300, seed=5, days=40).records())
    records += records[::7]  # delivered twice
    records += [b"{not json", raw(lead="L-bad", kind="teleported")]  # invalid
    with EmbeddedBroker(free_port(), log=tmp / "broker.log") as broker:
        # batches of 20 make many progress writes, so there are many cuts between them
        worker = Worker(broker.url, tmp / "w", tmp / "w.log", env={"JOURNEY_BATCH_SIZE": "20"}).start().wait_ready()
        try:
            for start in range(0, len(records), 500):
                produce(broker, records[start : start + 500])
            report_when_counted(worker, len(records), timeout=120)
        finally:
            worker.stop(signal.SIGINT)
        changelog = _read(f"{broker.host}:{broker.port}", topics.changelog_topic("journey", topics.LEADS_TABLE))
        events = _read(f"{broker.host}:{broker.port}", topics.EVENTS)
    assert sum(map(len, events.values())) == len(records)
    return records, changelog, events


def _read(bootstrap: str, topic: str) -> Log:
    log: Log = defaultdict(list)
    for message in kafka_messages(KafkaSource(bootstrap, topic)):
        log[message.partition].append((message.offset, message.key, message.value))
    return {p: [(key, value) if topic != topics.EVENTS else (offset, value) for offset, key, value in sorted(rows)] for p, rows in log.items()}


def _recover(changelog: Log, cuts: dict[int, int], events: Log, rng: random.Random, again: int = 30) -> dict[str, Any]:
    """Recover from the changelog cut at `cuts`, then read every partition again from where
    its progress says (from a little earlier too: delivery is at-least-once)."""
    defs = default_definitions()
    table: dict[str, bytes] = {}
    for partition, rows in changelog.items():
        for key, value in rows[: cuts[partition]]:
            table[key.decode()] = value
    projection = LiveProjection(defs)
    projection.rebuild(table.items(), set(events))
    access = _Table(table)
    for partition, rows in events.items():
        start = max(0, projection.next_offset(partition) - rng.randrange(0, again + 1))
        pending = [Record(offset, value) for offset, value in rows if offset >= start]
        while pending:
            size = rng.randrange(1, 60)
            result = BatchResult()
            before = projection.cluster_watermark
            projection.process(partition, pending[:size], access, result)
            projection.settle(result, before, access)
            pending = pending[size:]
    return merge(defs, [Partial.of(projection, projection.cluster_watermark)])


class _Table:
    def __init__(self, entries: dict[str, bytes]) -> None:
        self.entries = entries

    def get(self, lead_id: str) -> bytes | None:
        return self.entries.get(lead_id)

    def put(self, lead_id: str, value: bytes) -> None:
        self.entries[lead_id] = value


def _expected(records: list[bytes]) -> dict[str, Any]:
    projector = Projector()
    projector.feed_all(records)
    return projector.report(default_definitions())


class TestChangelogCuts:
    def test_the_changelog_holds_leads_then_progress_per_partition(self, run) -> None:
        _, changelog, events = run
        assert set(changelog) == set(events)
        for partition, rows in changelog.items():
            marks = [progress_partition(key.decode()) for key, _ in rows]
            assert set(marks) - {None} == {partition}, "progress lands in its own partition's changelog"
            assert marks[-1] == partition, "a batch ends with its progress"
            assert marks.count(partition) > 5, "several batches, so several cuts between progress writes"

    def test_recovering_from_any_cut_ends_equal_to_replay(self, run) -> None:
        records, changelog, events = run
        expected = _expected(records)
        rng = random.Random(11)
        trials = [{p: 0 for p in changelog}, {p: len(rows) for p, rows in changelog.items()}]
        trials += [{p: rng.randrange(0, len(rows) + 1) for p, rows in changelog.items()} for _ in range(40)]
        for cuts in trials:
            assert same_instants(_recover(changelog, cuts, events, rng), expected), f"cut at {cuts}"

    def test_progress_ahead_of_its_lead_writes_loses_events(self, run) -> None:
        """The check can fail: move each partition's last progress write ahead of the lead
        writes it vouches for (what two changelog topics allowed), cut between, and events are lost."""
        records, changelog, events = run
        reordered: Log = {}
        cuts: dict[int, int] = {}
        for partition, rows in changelog.items():
            marks = [i for i, (key, _) in enumerate(rows) if progress_partition(key.decode()) is not None]
            last, previous = marks[-1], marks[-2]
            batch = rows[previous + 1 : last]  # the lead writes of the last batch
            reordered[partition] = [*rows[: previous + 1], rows[last], *batch]
            cuts[partition] = previous + 2  # the progress arrived, its lead writes did not
        report = _recover(reordered, cuts, events, random.Random(0), again=0)
        assert sum(report["events"].values()) < len(records)
