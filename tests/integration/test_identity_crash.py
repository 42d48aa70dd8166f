"""Identity survives SIGKILL (SPEC §9, issue 26): anonymous-first journeys through two workers, one of them
killed twice while the log flows. Once the events stop, both answer replay's report, and the last change
per lead on journey.lead-changes is every lead's person under replay."""

from __future__ import annotations

import json
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from projections import Projector, default_definitions
from streams.tools.synthetic import JourneyGenerator
from tests.integration.conftest import Producer, Worker, read_topic, report_when_settled

pytestmark = pytest.mark.timeout(480)
LEADS, SEED, KILLS = 2_000, 26, 2


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop(signal.SIGKILL, timeout=10)


def test_a_worker_killed_twice_while_anonymous_journeys_flow_ends_equal_to_replay(broker, tmp_path: Path, workers: list[Worker]) -> None:
    records = list(JourneyGenerator(LEADS, seed=SEED, days=60, anonymous=0.6).records())
    replay = Projector()
    replay.feed_all(records)
    defs = default_definitions()
    expected = replay.report(defs)
    assert expected["identity"]["joined"] > 500
    steady = Worker(broker.url, tmp_path / "steady", tmp_path / "steady.log").start()
    victim = Worker(broker.url, tmp_path / "victim", tmp_path / "victim0.log").start()
    workers += [steady, victim]
    steady.wait_ready(timeout=120)
    victim.wait_ready(timeout=120)
    producer = Producer(broker, records, chunks=8, pause=1.0)
    producer.start()
    rng = random.Random(SEED)
    for kill in range(KILLS):
        time.sleep(rng.uniform(1.0, 4.0))
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait()
        victim = Worker(broker.url, tmp_path / "victim", tmp_path / f"victim{kill + 1}.log").start()
        workers.append(victim)
        victim.wait_ready(timeout=120)
    producer.join()
    assert producer.error is None, producer.error
    for worker in (steady, victim):
        report_when_settled(worker, expected, timeout=180)
    last = {}
    for message in read_topic(broker.url.removeprefix("kafka://"), "journey.lead-changes", 8):
        change = json.loads(message.value)
        last[change["lead_id"]] = change["new"]
    persons = {p["lead_id"]: {"stage": p["stage"], "qualification": p["qualification"]} for p in replay.lead_records(defs) if p["lead_id"] is not None}
    assert last == persons
