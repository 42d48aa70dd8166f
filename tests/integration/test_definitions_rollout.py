"""Definitions in a live cluster (SPEC §7): every worker names its definitions by digest, and
while workers disagree every answer that spans workers is a 503 naming them, never a mix."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import orjson
import pytest

from projections import Definitions, Projector, default_definitions, load_definitions
from streams.kafka import topics
from streams.tools.synthetic import JourneyGenerator
from tests.e2e.test_dashboard import CHROMIUM, FLAGS
from tests.helpers import same_instants
from tests.integration.conftest import Producer, produce, read_topic, report_when_counted, spec_report, wait_for

pytestmark = pytest.mark.timeout(300)
SPANNING = ["/api/report", "/api/stages", "/api/funnel", "/api/attribution"]


class TestRollingRestartToOtherDefinitions:
    def test_a_mixed_cluster_answers_503_naming_who_runs_what_then_the_new_report(self, broker, start_worker, golden_log, golden: Path, tmp_path: Path) -> None:
        alt_file = golden / "alt-definitions.yaml"
        old_digest, new_digest = default_definitions().digest, load_definitions(alt_file).digest
        produce(broker, golden_log)
        first = start_worker("first")
        report_when_counted(first, len(golden_log))
        second = start_worker("second", "--definitions", str(alt_file))
        assert first.get("/healthz")[1]["definitions"] == old_digest
        assert second.get("/healthz")[1]["definitions"] == new_digest

        def mixed() -> dict | None:
            status, body = first.get("/api/report")
            return body if status == 503 and "definitions" in body else None

        body = wait_for(mixed, 90, "the two workers to be in one group")
        assert body["definitions"] == {old_digest: [first.url], new_digest: [second.url]}
        assert old_digest in body["error"] and new_digest in body["error"]
        lead = json.loads(golden_log[0])["lead_id"]
        for worker, stage in ((first, "contact"), (second, "aware")):  # a stage of each worker's own definitions
            for path in [*SPANNING, f"/api/stages/{stage}/leads", f"/api/leads/{lead}"]:
                status, answer = worker.get(path)
                # never numbers from two definitions: a 503 naming both, or (a rebalance) a plain 503
                assert status == 503 and isinstance(answer.get("error"), str), (worker.url, path, status, answer)

        if CHROMIUM is not None:  # the dashboard says so in words (make test installs Chromium where it can)
            dom = subprocess.run(
                [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=8000", "--dump-dom", first.url + "/"],
                capture_output=True, timeout=90, text=True,
            ).stdout
            assert "the workers run different definitions" in dom and old_digest in dom, dom[:1500]

        first.stop()  # the rolling restart reaches the first worker too
        first = start_worker("first", "--definitions", str(alt_file))

        def agreed() -> dict | None:
            status, report = first.get("/api/report")
            return report if status == 200 and sum(report["events"].values()) == len(golden_log) else None

        report = wait_for(agreed, 90, "one report under the new definitions")
        expected = json.loads((golden / "expected-compare.json").read_text())["candidate"]  # replay under alt-definitions
        assert same_instants(spec_report(report, new_digest), expected)
        status, other = second.get("/api/report")
        assert status == 200 and same_instants(spec_report(other, new_digest), expected)


def replayed(records: list[bytes]) -> Projector:
    projector = Projector()
    projector.feed_all(records)
    return projector


def last_change_per_lead(bootstrap: str) -> dict[str, dict]:
    """What a consumer following journey.lead-changes ends at, per lead (its partition's offset order)."""
    last: dict[str, dict] = {}
    for message in sorted(read_topic(bootstrap, topics.LEAD_CHANGES, 8), key=lambda m: (m.partition, m.offset)):
        change = orjson.loads(message.value)
        last[change["lead_id"]] = change
    return last


def published_under(bootstrap: str) -> dict[int, str]:
    """Per partition, the digest journey.lead-changes.definitions last names."""
    found = {}
    for message in read_topic(bootstrap, topics.CHANGES_DEFINITIONS, 1):
        found[int(message.key)] = orjson.loads(message.value)["digest"]
    return found


def assert_topic_ends_at_replay(bootstrap: str, records: list[bytes], defs: Definitions) -> dict[str, dict]:
    """The last change per lead equals replay's --leads-out for every lead, and every partition's
    record names these definitions."""
    expected = {lead["lead_id"]: lead for lead in replayed(records).lead_records(defs)}
    last = last_change_per_lead(bootstrap)
    assert set(last) == set(expected)
    wrong = {lead: (last[lead]["new"], expected[lead]["stage"], expected[lead]["qualification"]) for lead in expected
             if last[lead]["new"] != {"stage": expected[lead]["stage"], "qualification": expected[lead]["qualification"]}}
    assert not wrong, f"{len(wrong)} of {len(expected)} leads end elsewhere, e.g. {list(wrong.items())[:3]}"
    assert published_under(bootstrap) == dict.fromkeys(range(8), defs.digest)
    return last


class Poller(threading.Thread):
    """Asks a worker for /api/report every few tenths of a second and keeps every answer, with the
    number of records the producer had begun to send once it came back: the log held no others."""

    def __init__(self, worker_of: list, producer: Producer) -> None:
        super().__init__(daemon=True)
        self.worker_of, self.producer, self.answers, self.stopped = worker_of, producer, [], threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            for worker in list(self.worker_of):
                status, body = worker.get("/api/report")
                self.answers.append((status, body, self.producer.begun))
            time.sleep(0.2)


class TestChangeStreamCatchesUp:
    def test_a_rolling_restart_while_events_flow_ends_with_every_lead_at_its_new_state(self, broker, start_worker, golden: Path) -> None:
        old, new = default_definitions(), load_definitions(golden / "alt-definitions.yaml")
        bootstrap = broker.url.removeprefix("kafka://")
        records = list(JourneyGenerator(1500, seed=13, days=60).records())
        producer = Producer(broker, records, chunks=8, pause=1.5)
        workers = [start_worker("first"), start_worker("second")]
        poller = Poller(workers, producer)
        producer.start()
        poller.start()
        for index, name in enumerate(("first", "second")):  # a rolling update: one worker at a time
            time.sleep(2.0)
            workers[index].stop()
            workers[index] = start_worker(name, "--definitions", str(golden / "alt-definitions.yaml"), data_dir=workers[index].data_dir)
        producer.join(timeout=180)
        assert producer.error is None and producer.sent == len(records)
        report_when_counted(workers[0], len(records), timeout=120)
        poller.stopped.set()
        poller.join()

        # During the switch: a 503, or one definitions' report. An answer that counted every record
        # the log held when it came back (the producer had begun no further) counted exactly that
        # prefix, and must equal its replay. (Counts alone cannot say so: partitions progress
        # independently, and a partition behind by a few records of known leads while another is
        # ahead by as many matches the prefix's event and lead counts; the log is not in time order.)
        by_digest = {old.digest: old, new.digest: new}
        expected_of: dict[tuple[int, str], dict] = {}
        compared = set()
        for status, body, begun in poller.answers:
            if status in (0, 503):
                continue  # 0: the worker is restarting
            assert status == 200, (status, body)
            defs = by_digest[body["definitions"]]
            counted = sum(body["events"].values())
            assert counted <= begun, (counted, begun)  # nothing counted twice, nothing from elsewhere
            if counted == begun:
                key = (counted, defs.digest)
                expected = expected_of[key] if key in expected_of else expected_of.setdefault(key, replayed(records[:counted]).report(defs))
                answer = spec_report(body)
                differs = {name: (answer.get(name), expected[name]) for name in expected if not same_instants(answer.get(name), expected[name])}
                assert not differs, (defs.digest, counted, differs)
                compared.add(defs.digest)
        assert compared, "no answer during the switch had counted all that was sent"

        report_when_counted(workers[1], len(records))
        for worker in workers:
            status, final = worker.get("/api/report")
            assert status == 200 and same_instants(spec_report(final, new.digest), replayed(records).report(new))
        last = assert_topic_ends_at_replay(bootstrap, records, new)
        assert any(change["cause"] == {"definitions": new.digest} for change in last.values())

    def test_a_worker_killed_while_it_publishes_the_catch_up_ends_right_after_its_restart_and_rolls_back(self, broker, start_worker, golden: Path, tmp_path: Path) -> None:
        old, new = default_definitions(), load_definitions(golden / "alt-definitions.yaml")
        bootstrap = broker.url.removeprefix("kafka://")
        records = list(JourneyGenerator(6000, seed=17, days=60).records())
        half = len(records) // 2
        produce(broker, records[:half])
        worker = start_worker("w", env={"JOURNEY_LOG_LEVEL": "info"})
        report_when_counted(worker, half, timeout=120)
        assert published_under(bootstrap) == dict.fromkeys(range(8), old.digest)
        worker.stop()

        alt = ("--definitions", str(golden / "alt-definitions.yaml"))
        logged = worker.log.stat().st_size
        # paused after each partition's catch-up (streams/live/pauses.py): killed with exactly one done
        worker = start_worker("w", *alt, data_dir=worker.data_dir, ready=False, env={"JOURNEY_LOG_LEVEL": "info", "JOURNEY_PAUSE": "catch-up=60"})

        def first_partition_caught_up() -> bool:
            assert worker.process.poll() is None, worker.tail()
            return "journey.lead-changes caught up" in worker.log.read_bytes()[logged:].decode(errors="replace")

        wait_for(first_partition_caught_up, 120, "the first partition's catch-up")
        worker.process.send_signal(signal.SIGKILL)
        worker.process.wait()
        published = published_under(bootstrap)
        assert sorted(published.values()) == sorted([new.digest] + [old.digest] * 7), f"not killed after exactly one partition: {published}"
        caught_up = [m for m in read_topic(bootstrap, topics.LEAD_CHANGES, 8) if b'"definitions"' in m.value]
        assert caught_up, "no catch-up change was published before the kill"

        produce(broker, records[half:])
        worker = start_worker("w", *alt, data_dir=worker.data_dir)
        report = report_when_counted(worker, len(records), timeout=120)
        assert same_instants(report, replayed(records).report(new))
        assert_topic_ends_at_replay(bootstrap, records, new)

        # Rolling back is the same operation: the topic catches up to the old definitions.
        worker.stop()
        worker = start_worker("w", data_dir=worker.data_dir)
        assert same_instants(report_when_counted(worker, len(records), timeout=120), replayed(records).report(old))
        last = assert_topic_ends_at_replay(bootstrap, records, old)
        assert any(change["cause"] == {"definitions": old.digest} for change in last.values())
