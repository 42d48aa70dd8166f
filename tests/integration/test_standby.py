"""Standby replicas (JOURNEY_STANDBY_REPLICAS=1, as the manifests run): each worker keeps a copy of the
other's partitions of the lead table, which is never counted, and takes them over from it when the other
dies; the report then still equals replay (issue 30)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from rocksdict import AccessType, Options, Rdict

from projections import Projector, default_definitions
from streams.kafka import topics
from streams.live.internals import RocksStore
from streams.tools.synthetic import JourneyGenerator
from tests.helpers import same_instants
from tests.integration.conftest import Worker, produce, report_when_counted, wait_for, written_locally

pytestmark = pytest.mark.timeout(300)
STANDBY = {"JOURNEY_STANDBY_REPLICAS": "1"}


def replayed(records: list[bytes]) -> dict:
    projector = Projector()
    projector.feed_all(records)
    return projector.report(default_definitions())


def held_offsets(data_dir: Path) -> dict[int, int | None]:
    """The changelog offset each partition's database in a (running) worker's data dir holds, read read-only."""
    held = {}
    for path in data_dir.rglob(f"{topics.LEADS_TABLE}-*.db"):
        db = Rdict(str(path), options=Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            offset = db.get(RocksStore.offset_key)
        finally:
            db.close()
        held[int(path.stem.rsplit("-", 1)[1])] = None if offset is None else int(offset)
    return held


def owned(worker: Worker) -> list[int]:
    return worker.get("/healthz")[1]["partitions"]


def test_standby_copies_are_never_counted_and_the_survivor_takes_over_equal_to_replay(broker, tmp_path, workers) -> None:
    bootstrap = broker.url.removeprefix("kafka://")
    records = list(JourneyGenerator(2500, seed=31, days=30).records())
    half = len(records) // 2
    first = workers(Worker(broker.url, tmp_path / "a", tmp_path / "a.log", env=STANDBY).start()).wait_ready()
    second = workers(Worker(broker.url, tmp_path / "b", tmp_path / "b.log", env=STANDBY).start()).wait_ready()
    wait_for(lambda: sorted(owned(first) + owned(second)) == list(range(8)) and first.get("/readyz")[0] == second.get("/readyz")[0] == 200, 120, "two ready workers sharing the partitions")
    mine, theirs = owned(second), owned(first)
    assert mine and theirs
    for start in range(0, half, half // 6 + 1):  # in chunks: leads written again and again, over 1000 changelog records a
        produce(broker, records[start : min(start + half // 6 + 1, half)])  # worker, which Faust buffers before applying to a standby copy

    # each counts its own partitions only, standby copies included nowhere: the cluster's report is replay's
    assert same_instants(report_when_counted(second, half), replayed(records[:half]))
    written_locally(second, bootstrap)
    events = [sum(worker.get("/api/report")[1]["events"].values()) for worker in (first, second)]
    assert events == [half, half]

    # the survivor keeps a standby copy of the other's partitions, following their changelog
    wait_for(lambda: all(held_offsets(tmp_path / "b").get(p) is not None for p in theirs), 60, f"standby copies of {theirs} in the second worker")

    first.stop(signal.SIGKILL)
    produce(broker, records[half:])
    wait_for(lambda: owned(second) == list(range(8)) and second.get("/readyz")[0] == 200, 120, "the survivor to take every partition over")
    assert same_instants(report_when_counted(second, len(records), timeout=120), replayed(records))
    assert "Traceback" not in second.tail()
