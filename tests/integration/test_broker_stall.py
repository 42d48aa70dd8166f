"""A broker that stalls (SIGSTOP) while HTTP ingest is posting loses no accepted event and stops no worker
(issue 28, items 3 and 4), on the embedded broker with a real worker.

Two senders post batches of events one request after another, with a 20 s
client timeout, while the test pauses the broker's process for 14 s (longer
than the worker's 10 s ingest timeout and the embedded profile's 8 s session
timeout) and resumes it. Then:

- every request was answered, 200 or 503 with a reason, never left hanging;
- every event answered `accepted` is on journey.events and counted, and the
  worker's counts equal a replay of the topic (a request answered 503 may still
  have reached it: at-least-once; a resent event counts once);
- the worker kept its PID and answers /healthz;
- its watermark follower still works: a later watermark another worker
  announces after the outage turns a lead SAL by staleness, and the change is
  published on journey.lead-changes. (The test writes that announcement as a
  worker would; the HTTP answers, which ask the group's members for their
  watermarks, do not know that worker.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from schemas import decode, parse_time
from streams.kafka import topics
from tests.integration.conftest import JOURNEY, Worker, produce, read_topic, report_when_counted, wait_for

pytestmark = pytest.mark.timeout(300)
TOKEN = "stall-ingest"
PAUSE_SECONDS = 14
CLIENT_TIMEOUT = 20
INGEST_TIMEOUT = 10  # the worker's default (JOURNEY_INGEST_TIMEOUT)
STALE_LEAD = "stale-lead"


@dataclass
class Answer:
    took: float
    status: int  # 0: no answer within the client's timeout
    body: object


class Sender(threading.Thread):
    """Posts batches of 25 events to /api/events, one request after another, as a platform does."""

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__(daemon=True)
        self.url, self.prefix = url, prefix
        self.answers: list[Answer] = []
        self.accepted: set[str] = set()
        self.stopping = threading.Event()

    def run(self) -> None:
        batch = 0
        while not self.stopping.is_set():
            events = [
                {"event_id": f"{self.prefix}-{batch}-{i}", "lead_id": f"{self.prefix}-lead-{(7 * batch + i) % 40}",
                 "type": ("ad_seen", "content_read", "purchase")[i % 3], "occurred_at": "2026-09-02T10:00:00Z", "amount": 1.5}
                for i in range(25)
            ]
            started = time.monotonic()
            status, body = self._post(orjson.dumps(events))
            self.answers.append(Answer(time.monotonic() - started, status, body))
            if status == 200:
                self.accepted |= {r["event_id"] for r in body["results"] if r["status"] == "accepted"}  # type: ignore[index]
            batch += 1
            time.sleep(0.05)

    def _post(self, body: bytes) -> tuple[int, object]:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
        request = urllib.request.Request(f"{self.url}/api/events", data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=CLIENT_TIMEOUT) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            return 0, repr(error)


def announce_watermark(bootstrap: str, at: str) -> None:
    """What another worker writes on journey.watermarks when its watermark moves on."""
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        producer.send(topics.WATERMARKS, key=b"http://another-worker:6066", value=b"%d" % parse_time(at)).get(timeout=30)
    finally:
        producer.close()


def replay_of_topic(broker_url: str) -> dict:
    done = subprocess.run([JOURNEY, "replay", "--input", f"{broker_url}/{topics.EVENTS}", "--format", "json"], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def went_sal_by_staleness(bootstrap: str) -> list[dict]:
    changes = [orjson.loads(m.value) for m in read_topic(bootstrap, topics.LEAD_CHANGES, 8)]
    return [c for c in changes if c["lead_id"] == STALE_LEAD and c["new"]["qualification"] == "sal" and c["cause"] == {"watermark": True}]


class TestBrokerStall:
    def test_ingest_answers_every_request_loses_no_accepted_event_and_the_worker_goes_on(self, broker, start_worker, tmp_path: Path) -> None:
        bootstrap = broker.url.removeprefix("kafka://")
        # An MQL from reads on 1 and 2 September, in research since the 1st: SAL once the watermark passes the 15th.
        produce(broker, [orjson.dumps({"event_id": f"r{i}", "lead_id": STALE_LEAD, "type": "content_read", "occurred_at": f"2026-09-0{i}T00:00:00Z"}) for i in (1, 2)])
        worker: Worker = start_worker("w1", env={"JOURNEY_INGEST_TOKEN": TOKEN, "JOURNEY_LOG_LEVEL": "info"})
        pid = worker.process.pid
        report_when_counted(worker, 2)

        senders = [Sender(worker.url, name) for name in ("s1", "s2")]
        for sender in senders:
            sender.start()
        time.sleep(3)
        os.kill(broker.pid, signal.SIGSTOP)
        try:
            time.sleep(PAUSE_SECONDS)
        finally:
            os.kill(broker.pid, signal.SIGCONT)
        time.sleep(5)
        for sender in senders:
            sender.stopping.set()
        for sender in senders:
            sender.join(timeout=CLIENT_TIMEOUT + 5)

        answers = [answer for sender in senders for answer in sender.answers]
        unanswered = [a for a in answers if a.status not in (200, 503)]
        assert not unanswered, unanswered  # every request answered within the client's timeout
        refused = [a for a in answers if a.status == 503]
        assert refused, "no request felt the stall"
        assert all("broker" in a.body["error"] for a in refused), refused  # type: ignore[index]
        assert max(a.took for a in answers) < INGEST_TIMEOUT + 5  # the worker's default timeout, and some slack
        assert sum(a.status == 200 for a in answers[-10:]) > 0, "ingest did not recover"

        accepted = set().union(*(sender.accepted for sender in senders))
        on_topic = {decode(m.value).event_id for m in read_topic(bootstrap, topics.EVENTS, 8)}
        missing = accepted - on_topic
        assert not missing, f"{len(missing)} accepted events are not on {topics.EVENTS}: {sorted(missing)[:5]}"
        replayed = replay_of_topic(broker.url)
        report = report_when_counted(worker, sum(replayed["events"].values()), timeout=120)
        assert report["events"] == replayed["events"] and report["leads"] == replayed["leads"]
        assert report["pipeline"] == replayed["pipeline"] and report["funnel"] == replayed["funnel"]

        assert not went_sal_by_staleness(bootstrap)  # its own watermark (2 September) leaves the lead an MQL
        announce_watermark(bootstrap, "2026-09-20T00:00:00Z")
        wait_for(lambda: went_sal_by_staleness(bootstrap), 60, f"{STALE_LEAD} published as SAL by the watermark")

        assert worker.process.poll() is None and worker.process.pid == pid
        assert worker.get("/healthz")[0] == 200
        log = (tmp_path / "w1.log").read_text(errors="replace")
        assert "Crashed" not in log and "Traceback" not in log, worker.tail()
