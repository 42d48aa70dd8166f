"""GET /readyz: 503 until a worker is ready (tables recovered, projection rebuilt, partitions caught up
to their end offsets as of then), 200 after, 503 again through a rebalance; /healthz answers throughout (issue 30)."""

from __future__ import annotations

import time

import pytest

from streams.tools.synthetic import JourneyGenerator
from tests.integration.conftest import Worker, produce, wait_for

pytestmark = pytest.mark.timeout(300)

REASONS = ("recovering tables", "rebuilding the projection", "catching up journey.lead-changes", "reading the end offsets of journey.events", "catching up partition ")


def probe_until_ready(worker: Worker, timeout: float = 120) -> list[tuple[int, str | None, int]]:
    """(readyz status, its reason, healthz status) every 50 ms from the first answer until /readyz is 200."""
    seen: list[tuple[int, str | None, int]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert worker.process is not None and worker.process.poll() is None, worker.tail()
        status, body = worker.get("/readyz")
        health, _ = worker.get("/healthz")
        if status or health:
            seen.append((status, (body or {}).get("reason"), health))
        if status == 200:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"/readyz not 200 after {timeout}s; last {seen[-3:]}; {worker.tail()}")


def assert_not_ready_then_ready(seen: list[tuple[int, str | None, int]]) -> None:
    statuses = [status for status, _, _ in seen]
    assert 503 in statuses and statuses[-1] == 200, seen
    assert all(health == 200 for _, _, health in seen), seen  # alive throughout, ready or not
    for status, reason, _ in seen:
        assert status == 200 or (status == 503 and reason and reason.startswith(REASONS)), (status, reason)


def test_readyz_is_503_until_caught_up_and_through_a_rebalance_while_healthz_answers(broker, tmp_path, workers) -> None:
    records = list(JourneyGenerator(4000, seed=11, days=30).records())
    produce(broker, records)
    first = workers(Worker(broker.url, tmp_path / "w1", tmp_path / "w1.log").start())
    seen = probe_until_ready(first)
    assert_not_ready_then_ready(seen)
    # ready means caught up to the end offsets as of the rebuild: every record produced before is counted
    status, report = first.get("/api/report")
    assert status == 200 and sum(report["events"].values()) == len(records), report["events"]
    assert first.get("/readyz") == (200, first.get("/readyz")[1]) and first.get("/readyz")[1]["status"] == "ready"

    second = workers(Worker(broker.url, tmp_path / "w2", tmp_path / "w2.log").start())
    wait_for(lambda: first.get("/readyz")[0] == 503, 60, "the rebalance to take the first worker out of service", interval=0.05)
    again = probe_until_ready(first, timeout=120)
    assert_not_ready_then_ready(again)
    assert_not_ready_then_ready(probe_until_ready(second))
    owned = sorted(first.get("/readyz")[1]["partitions"] + second.get("/readyz")[1]["partitions"])
    assert owned == list(range(8))
