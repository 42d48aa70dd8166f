"""A record the fold raises on does not stop the worker (issue 28, item 2), against a real broker and worker.

The worker runs with JOURNEY_FAULT (streams/live/faults.py): its fold raises,
from inside `LiveProjection.process` as a bug would, on records whose event id
holds BADEVENT (inside the C fold, before anything is written) and while
writing the lead whose id holds BADLEAD (after the fold, part of the batch
already counted). Each such record must go to the DLQ as `internal` and count
as invalid, once; every other record counts as replay counts it; the worker
keeps its PID.
"""

from __future__ import annotations

import signal
from pathlib import Path

import orjson
import pytest

from projections import Projector, default_definitions
from schemas import Rejection, decode
from streams.kafka import topics
from tests.helpers import same_instants
from tests.integration.conftest import Worker, produce, read_topic, report_when_counted

pytestmark = pytest.mark.timeout(300)
FAULTS = {"JOURNEY_FAULT": "fold=BADEVENT,write=BADLEAD", "JOURNEY_LOG_LEVEL": "info"}
POISONED_LEAD = "poisoned-lead-BADLEAD"


def hostile_log(golden_log: list[bytes]) -> tuple[list[bytes], set[int]]:
    """The golden log with every 97th valid record's event id marked, and a lead of its own whose
    every record is marked (by lead id); and the positions of those records."""
    lines, poison = [], set()
    for i, line in enumerate(golden_log):
        event = decode(line)
        if i % 97 == 5 and not isinstance(event, Rejection) and len(event.event_id) < 100:
            line = orjson.dumps({**orjson.loads(line), "event_id": event.event_id + "-BADEVENT"})
            poison.add(len(lines))
        lines.append(line)
        if i % 300 == 7:
            poison.add(len(lines))
            lines.append(orjson.dumps({"event_id": f"p{i}", "lead_id": POISONED_LEAD, "type": "content_read", "occurred_at": "2026-09-03T10:00:00Z"}))
    return lines, poison


def expected(lines: list[bytes], poison: set[int]) -> dict:
    """Replay's report of the log with the poison records invalid."""
    projector = Projector()
    projector.feed_all(b"not json" if i in poison else line for i, line in enumerate(lines))
    return projector.report(default_definitions())


def poison_count(worker: Worker) -> float:
    for line in worker.text("/metrics").splitlines():
        if line.startswith("journey_poison_records_total "):
            return float(line.split()[1])
    raise AssertionError("no journey_poison_records_total in /metrics")


class TestPoisonRecords:
    def test_the_worker_keeps_its_pid_and_counts_everything_else_once(self, broker, start_worker, golden_log, tmp_path: Path) -> None:
        lines, poison = hostile_log(golden_log)
        assert len(poison) > 10
        worker = start_worker("w1", env=FAULTS)
        pid = worker.process.pid
        produce(broker, lines[: len(lines) // 2])
        report_when_counted(worker, len(lines) // 2)
        produce(broker, lines[len(lines) // 2 :])
        report = report_when_counted(worker, len(lines))
        assert same_instants(report, expected(lines, poison))
        assert worker.process.poll() is None and worker.process.pid == pid and worker.get("/healthz")[0] == 200
        assert poison_count(worker) == len(poison)

        letters = [m for m in read_topic(broker.url.removeprefix("kafka://"), topics.DLQ, 1) if dict(m.headers)["reason-class"] == b"internal"]
        assert sorted(m.value for m in letters) == sorted(lines[i] for i in poison)
        assert all(dict(m.headers)["reason"].startswith(b"internal: the fold raised InjectedFault") for m in letters)

        log = (tmp_path / "w1.log").read_text(errors="replace")
        assert log.count("the fold raised InjectedFault on this record") == len(poison)
        assert "L11-" not in log and POISONED_LEAD not in log  # no lead id above DEBUG
        assert "Crashed" not in log and "Traceback" not in log

    def test_a_restarted_worker_counts_the_poison_once(self, broker, golden_log, tmp_path: Path) -> None:
        lines, poison = hostile_log(golden_log)
        produce(broker, lines)
        first = Worker(broker.url, tmp_path / "data", tmp_path / "first.log", env=FAULTS).start().wait_ready()
        try:
            report_when_counted(first, len(lines))
        finally:
            first.stop(signal.SIGKILL)
        for name, data in (("again", tmp_path / "data"), ("fresh", tmp_path / "fresh")):  # its own tables, then the changelog's
            worker = Worker(broker.url, data, tmp_path / f"{name}.log", env=FAULTS).start()
            try:
                worker.wait_ready()
                assert same_instants(report_when_counted(worker, len(lines)), expected(lines, poison))
            finally:
                worker.stop(signal.SIGKILL)
