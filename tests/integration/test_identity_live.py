"""Identity on live workers (SPEC §9): the golden identity log through two workers, whose persons span
partitions held by either. Once the events stop, the report, every person through /api/leads and
/api/anonymous, and the last change per lead on journey.lead-changes equal replay's."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest

from tests.conftest import golden_json
from tests.helpers import same_instants
from tests.integration.conftest import Worker, produce, read_topic, report_when_settled

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def golden_identity(golden) -> tuple[list[bytes], dict[str, Any], list[dict[str, Any]]]:
    log = [line for line in (golden / "journey-identity.jsonl").read_bytes().split(b"\n") if line.strip()]
    return log, golden_json("expected-identity-report.json"), golden_json("expected-identity-leads.jsonl")  # type: ignore[return-value]


@pytest.fixture(scope="module")
def workers(shared_broker, start_shared_worker, golden_identity):
    """Two workers projecting the identity log; the tests only read."""
    log, expected, _ = golden_identity
    first, second = start_shared_worker("w1"), start_shared_worker("w2")
    produce(shared_broker, log)
    report_when_settled(first, expected, timeout=120)
    return first, second


def quoted(text: str) -> str:
    return urllib.parse.quote(text, safe="")


class TestIdentityLive:
    def test_the_report_of_either_worker_equals_replay_identity_section_included(self, workers, golden_identity) -> None:
        _, expected, _ = golden_identity
        for worker in workers:
            report = report_when_settled(worker, expected, timeout=60)
            assert report["identity"] == {"anonymous_ids": 339, "joined": 222, "over_limit": 30}

    def test_velocity_from_either_worker_equals_replay(self, workers, golden_identity) -> None:
        # SPEC §10 across workers: time in stage, the windowed funnel, time to convert
        _, expected, _ = golden_identity
        for worker in workers:
            status, body = worker.get("/api/velocity")
            assert status == 200 and body == {key: expected[key] for key in ("velocity", "funnel_window", "time_to_convert")}

    def test_every_lead_is_its_person_with_the_anonymous_ids_that_joined_it(self, workers, golden_identity) -> None:
        _, _, persons = golden_identity
        leads = [person for person in persons if person["lead_id"] is not None]
        assert any(len(person["anonymous_ids"]) == 100 for person in leads)  # the lead claimed 130 times
        for i, person in enumerate(leads):
            status, body = workers[i % 2].get("/api/leads/" + quoted(person["lead_id"]))
            assert status == 200 and same_instants(body, person), person["lead_id"]

    def test_every_anonymous_id_answers_the_person_it_is_part_of(self, workers, golden_identity) -> None:
        _, _, persons = golden_identity
        for i, person in enumerate(persons):
            for anonymous_id in person["anonymous_ids"][:3]:
                status, body = workers[(i + 1) % 2].get("/api/anonymous/" + quoted(anonymous_id))
                assert status == 200 and same_instants(body, person), anonymous_id
        status, body = workers[0].get("/api/anonymous/never-seen")
        assert status == 404 and body["error"] == "unknown anonymous id"

    def test_the_change_stream_ends_at_every_lead_s_person_and_names_links_as_causes(self, shared_broker, workers, golden_identity) -> None:
        _, _, persons = golden_identity
        last: dict[str, dict[str, Any]] = {}
        for message in read_topic(shared_broker.url.removeprefix("kafka://"), "journey.lead-changes", 8):
            change = json.loads(message.value)
            last[change["lead_id"]] = change
        expected = {p["lead_id"]: {"stage": p["stage"], "qualification": p["qualification"]} for p in persons if p["lead_id"] is not None}
        assert {lead: change["new"] for lead, change in last.items()} == expected  # lead ids only: no anonymous person has changes
        assert any(change["cause"].get("type") == "identified" for change in last.values())

    def test_a_worker_with_other_identity_options_refuses_to_start_in_one_line(self, shared_broker, workers, golden, tmp_path) -> None:
        other = tmp_path / "keep-one.yaml"
        other.write_text((golden / "default-definitions.yaml").read_text().replace("max_anonymous_ids: 100", "max_anonymous_ids: 1"))
        worker = Worker(shared_broker.url, tmp_path / "other", tmp_path / "other.log", "--definitions", str(other)).start()
        assert worker.process is not None and worker.process.wait(timeout=60) == 1
        lines = [line for line in worker.tail().splitlines() if line.strip()]
        assert len(lines) == 1 and "identity options" in lines[0] and "JOURNEY_APP_ID" in lines[0], lines
