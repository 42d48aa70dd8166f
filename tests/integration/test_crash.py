"""Nothing lost, nothing counted twice: workers killed with SIGKILL, joining and leaving mid-stream (issue 4).

Bounded by default (3 kills); JOURNEY_SOAK=1 runs a longer soak (10 kills, a larger log).
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from projections import Projector, default_definitions
from streams.tools.synthetic import JourneyGenerator
from tests.helpers import same_instants
from tests.integration.conftest import Producer, Worker, report_when_counted

SOAK = os.environ.get("JOURNEY_SOAK") == "1"
KILLS = 10 if SOAK else 3
LEADS = 12_000 if SOAK else 3_000
SEED = int(os.environ.get("JOURNEY_CRASH_SEED", "7"))

pytestmark = pytest.mark.timeout(1800 if SOAK else 420)


def expected_report(records: list[bytes]) -> dict:
    projector = Projector()
    projector.feed_all(records)
    return projector.report(default_definitions())


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    """Every worker a test starts; those still running when it ends, however it ends, are killed."""
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop(signal.SIGKILL, timeout=10)


class TestCrashSafety:
    def test_workers_killed_at_random_points_end_equal_to_replay(self, broker, tmp_path: Path, workers: list[Worker]) -> None:
        records = list(JourneyGenerator(LEADS, seed=SEED, days=60).records())
        rng = random.Random(SEED)
        producer = Producer(broker, records, chunks=4 * KILLS, pause=1.0)
        worker = Worker(broker.url, tmp_path / "w0", tmp_path / "w0.log").start()
        workers.append(worker)
        worker.wait_ready()
        producer.start()
        for kill in range(KILLS):
            time.sleep(rng.uniform(0.5, 4.0))
            worker.process.send_signal(signal.SIGKILL)
            worker.process.wait()
            fresh = kill % 2 == 1  # alternate: same data dir, fresh data dir on another port
            data_dir = tmp_path / (f"fresh{kill}" if fresh else "w0")
            worker = Worker(broker.url, data_dir, tmp_path / f"w{kill + 1}.log").start()
            workers.append(worker)
            worker.wait_ready(timeout=120)
        producer.join()
        assert producer.error is None, producer.error
        report = report_when_counted(worker, len(records), timeout=240)
        assert same_instants(report, expected_report(records))

    def test_a_second_worker_joining_and_leaving_mid_stream_changes_nothing(self, broker, tmp_path: Path, workers: list[Worker]) -> None:
        records = list(JourneyGenerator(LEADS, seed=SEED + 1, days=60).records())
        producer = Producer(broker, records, chunks=12, pause=1.0)
        first = Worker(broker.url, tmp_path / "a", tmp_path / "a.log").start()
        workers.append(first)
        first.wait_ready()
        producer.start()
        time.sleep(3)
        second = Worker(broker.url, tmp_path / "b", tmp_path / "b.log").start()
        workers.append(second)
        second.wait_ready(timeout=120)
        time.sleep(4)
        second.stop(signal.SIGINT)
        producer.join()
        assert producer.error is None, producer.error
        report = report_when_counted(first, len(records), timeout=240)
        assert same_instants(report, expected_report(records))
