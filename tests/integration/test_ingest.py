"""POST /api/events and the read token (issue 4), against a real worker and broker."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import orjson
import pytest

from schemas import Rejection, decode
from tests.conftest import golden_json
from tests.helpers import as_cloudevent, as_segment_call, as_track_call, same_instants
from tests.integration.conftest import report_when_counted, report_when_settled, wait_for

pytestmark = pytest.mark.timeout(240)
TOKEN = "s3cret-ingest"
READ = "s3cret-read"


def chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


@pytest.fixture(scope="module")
def ingest_worker(start_shared_worker):
    """A worker taking ingest, shared by tests whose requests are all refused."""
    return start_shared_worker("ingest", env={"JOURNEY_INGEST_TOKEN": TOKEN})


class TestIngest:
    def test_the_golden_log_sent_as_json_lines_is_projected_and_invalid_events_are_answered(
        self, start_worker, golden_log, expected_report
    ) -> None:
        worker = start_worker(env={"JOURNEY_INGEST_TOKEN": TOKEN})
        answers = []
        for part in chunks(golden_log, 400):
            status, body = worker.request("POST", "/api/events", b"\n".join(part), "application/x-ndjson", TOKEN)
            assert status == 200, body
            answers.extend(body["results"])
        rejected = [a for a in answers if a["status"] == "rejected"]
        assert len(answers) == len(golden_log) and len(rejected) == 36
        assert rejected[0]["reason"] == decode(golden_log[rejected[0]["index"]]).reason
        report = report_when_counted(worker, len(golden_log) - 36)
        assert same_instants(report, {**expected_report, "events": {**expected_report["events"], "invalid": 0}})

    def test_a_json_array_is_accepted_per_event(self, start_worker) -> None:
        worker = start_worker(env={"JOURNEY_INGEST_TOKEN": TOKEN})
        events = [{"event_id": "1", "lead_id": "A", "type": "ad_seen", "occurred_at": "2026-09-01T10:00:00Z"}, {"event_id": "2"}]
        status, body = worker.request("POST", "/api/events", orjson.dumps(events), "application/json", TOKEN)
        assert status == 200 and body["accepted"] == 1 and body["rejected"] == 1
        assert body["results"][1] == {"index": 1, "status": "rejected", "reason": decode(b'{"event_id": "2"}').reason}
        wait_for(lambda: worker.get("/api/leads/A")[0] == 200, 30, "lead A projected")

    def test_an_amount_over_10_to_the_12_is_rejected_saying_why(self, ingest_worker) -> None:
        too_much = {"event_id": "1", "lead_id": "A", "type": "purchase", "occurred_at": "2026-09-01T10:00:00Z", "amount": 10**12 + 1}
        status, body = ingest_worker.request("POST", "/api/events", orjson.dumps([too_much]), "application/json", TOKEN)
        assert status == 200 and body["accepted"] == 0
        assert body["results"][0]["status"] == "rejected" and "1000000000000" in body["results"][0]["reason"]

    @pytest.mark.parametrize(
        "body,content_type,token,status",
        [
            (b"[]", "application/json", None, 401),
            (b"[]", "application/json", "wrong", 401),
            (b"[]", "application/xml", TOKEN, 415),
            (b"{not json", "application/json", TOKEN, 400),
            (b'{"a": 1}', "application/json", TOKEN, 400),
            (b"x" * (1024 * 1024 + 1), "application/x-ndjson", TOKEN, 413),
            (b"\n".join([b"{}"] * 1001), "application/x-ndjson", TOKEN, 413),
        ],
        ids=["no token", "wrong token", "wrong content type", "bad json", "not an array", "over 1 MiB", "over 1000 events"],
    )
    def test_bad_requests_get_a_json_error(self, ingest_worker, body: bytes, content_type: str, token: str | None, status: int) -> None:
        worker = ingest_worker
        got, answer = worker.request("POST", "/api/events", body, content_type, token)
        assert got == status and answer["error"]

    def test_without_a_token_ingest_is_off_and_says_so(self, start_worker) -> None:
        status, body = start_worker().request("POST", "/api/events", b"[]", "application/json")
        assert status == 403 and "JOURNEY_INGEST_TOKEN" in body["error"]

    def test_a_token_file_works_like_the_variable(self, start_worker, tmp_path) -> None:
        token_file = tmp_path / "token"
        token_file.write_text(TOKEN + "\n")
        worker = start_worker(env={"JOURNEY_INGEST_TOKEN_FILE": str(token_file)})
        assert worker.request("POST", "/api/events", b"[]", "application/json", TOKEN)[0] == 200

    def test_in_demo_mode_ingest_needs_no_token(self, start_worker) -> None:
        assert start_worker(env={"JOURNEY_DEMO": "1"}).request("POST", "/api/events", b"[]", "application/json")[0] == 200


class TestLoad:
    def test_200_concurrent_requests_of_100_events_lose_nothing_and_count_nothing_twice(self, start_worker) -> None:
        worker = start_worker(env={"JOURNEY_INGEST_TOKEN": TOKEN})

        def body(request: int) -> bytes:
            return b"\n".join(
                orjson.dumps({"event_id": f"e{request}-{i}", "lead_id": f"L{(request * 100 + i) % 5000}", "type": "content_read", "occurred_at": f"2026-09-01T10:{i % 60:02d}:00Z"})
                for i in range(100)
            )

        async def send_all() -> list[int]:
            headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"}
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:

                async def one(request: int) -> int:
                    async with session.post(worker.url + "/api/events", data=body(request), headers=headers) as response:
                        answer = await response.json()
                        return answer["accepted"] if response.status == 200 else -response.status

                return await asyncio.gather(*(one(r) for r in range(200)))

        accepted = asyncio.run(send_all())
        assert accepted == [100] * 200
        report = report_when_counted(worker, 20_000, timeout=120)
        assert report["events"] == {"valid": 20_000, "invalid": 0, "duplicates": 0}
        assert report["leads"] == 5000


class TestReadToken:
    def test_read_endpoints_need_the_read_token_and_peers_pass_it_on(self, broker, start_worker, golden_log, tmp_path) -> None:
        """The second worker reads its token from a file, as Kubernetes mounts a Secret (JOURNEY_READ_TOKEN_FILE)."""
        from tests.integration.conftest import produce

        token_file = tmp_path / "read-token"
        token_file.write_text(READ + "\n")
        first, second = start_worker("w1", env={"JOURNEY_READ_TOKEN": READ}), start_worker("w2", env={"JOURNEY_READ_TOKEN_FILE": str(token_file)})
        produce(broker, golden_log[:50])
        assert first.get("/api/report")[0] == 401
        assert first.get("/api/leads/L11-000276")[0] == 401
        assert first.get("/healthz")[0] == 200
        assert second.get("/api/report")[0] == 401 and second.get("/api/report", token="wrong")[0] == 401

        def counted() -> bool:
            status, report = second.get("/api/report", token=READ)
            return status == 200 and sum(report["events"].values()) == 50

        wait_for(counted, 60, "the report with the read token")
        lead = json.loads(golden_log[0])["lead_id"]
        assert first.get(f"/api/leads/{lead}", token=READ)[0] == 200
        assert second.get(f"/api/leads/{lead}", token=READ)[0] == 200


class TestPlatformFormats:
    def test_the_golden_log_sent_as_cloudevents_and_segment_calls_gives_the_expected_report(self, start_worker, golden_log, expected_report) -> None:
        worker = start_worker(env={"JOURNEY_INGEST_TOKEN": TOKEN})
        valid = [orjson.loads(record) for record in golden_log if not isinstance(decode(record), Rejection)]
        third = len(valid) // 3
        single, batch, segment = valid[:50], valid[50:third], valid[third:]
        for event in single:
            status, body = worker.request("POST", "/api/events", orjson.dumps(as_cloudevent(event)), "application/cloudevents+json", TOKEN)
            assert status == 200 and body["accepted"] == 1, body
        for part in chunks(batch, 300):
            status, body = worker.request("POST", "/api/events", orjson.dumps([as_cloudevent(e) for e in part]), "application/cloudevents-batch+json", TOKEN)
            assert status == 200 and body["accepted"] == len(part), body
        for part in chunks(segment, 300):
            calls = [as_track_call(e) for e in part] + [{"type": "page", "userId": part[0]["lead_id"], "name": "Pricing"}]
            status, body = worker.request("POST", "/api/ingest/segment", orjson.dumps({"batch": calls}), "application/json", TOKEN)
            assert status == 200 and (body["accepted"], body["rejected"], body["ignored"]) == (len(part), 0, 1), body
            assert body["results"][-1] == {"index": len(part), "status": "ignored"}
        report = report_when_counted(worker, len(valid))
        assert same_instants(report, {**expected_report, "events": {**expected_report["events"], "invalid": 0}})

    def test_the_identity_log_as_cloudevents_and_segment_track_identify_and_alias_calls_gives_replay_s_persons(self, start_worker, golden) -> None:
        # SPEC §8, §9: anonymous CloudEvents (data.anonymous_id, no subject), Segment anonymousId beside userId,
        # identify calls (and an alias call) as links
        worker = start_worker(env={"JOURNEY_INGEST_TOKEN": TOKEN})
        log = [line for line in (golden / "journey-identity.jsonl").read_bytes().split(b"\n") if line.strip()]
        valid = [orjson.loads(record) for record in log if not isinstance(decode(record), Rejection)]
        half = len(valid) // 2
        for part in chunks(valid[:half], 300):
            status, body = worker.request("POST", "/api/events", orjson.dumps([as_cloudevent(e) for e in part]), "application/cloudevents-batch+json", TOKEN)
            assert status == 200 and body["accepted"] == len(part), body
        calls = [as_segment_call(e) for e in valid[half:]]
        aliased = next(i for i, call in enumerate(calls) if call["type"] == "identify")
        calls[aliased] = {**{k: v for k, v in calls[aliased].items() if k != "anonymousId"}, "type": "alias", "previousId": calls[aliased]["anonymousId"]}
        for part in chunks(calls, 300):
            status, body = worker.request("POST", "/api/ingest/segment", orjson.dumps({"batch": part}), "application/json", TOKEN)
            assert status == 200 and body["accepted"] == len(part), body
        expected = golden_json("expected-identity-report.json")
        report_when_settled(worker, {**expected, "events": {**expected["events"], "invalid": 0, "duplicates": expected["events"]["duplicates"]}}, timeout=120)

    def test_an_identify_call_without_an_anonymous_id_is_rejected_in_segment_terms(self, ingest_worker) -> None:
        call = {"type": "identify", "userId": "P1", "messageId": "m1", "timestamp": "2026-09-01T10:00:00Z", "traits": {"plan": "pro"}}
        status, body = ingest_worker.request("POST", "/api/ingest/segment", orjson.dumps(call), "application/json", TOKEN)
        assert status == 200 and body["rejected"] == 1 and body["results"][0]["reason"].startswith("anonymousId (anonymous_id): missing")

    def test_rejections_name_the_senders_fields_and_the_token_is_the_same(self, ingest_worker) -> None:
        event = {"event_id": "c1", "lead_id": "P1", "type": "purchase", "occurred_at": "2026-09-01T10:00:00Z", "amount": 10**13}
        bad = [as_cloudevent(event), {**as_cloudevent(event), "specversion": "0.3"}, {k: v for k, v in as_cloudevent(event).items() if k != "subject"}]
        status, body = ingest_worker.request("POST", "/api/events", orjson.dumps(bad), "application/cloudevents-batch+json", TOKEN)
        assert status == 200 and body["accepted"] == 0
        reasons = [result["reason"] for result in body["results"]]
        assert reasons[0].startswith("data.amount (amount):") and reasons[1].startswith("specversion:") and reasons[2].startswith("subject: missing")
        status, body = ingest_worker.request("POST", "/api/ingest/segment", orjson.dumps(as_track_call(event, "Nothing Mapped")), "application/json", TOKEN)
        assert status == 200 and body["results"] == [{"index": 0, "status": "rejected", "reason": "unmapped event", "event": "Nothing Mapped"}]
        assert ingest_worker.request("POST", "/api/ingest/segment", orjson.dumps(as_track_call(event)), "application/json", "wrong")[0] == 401
        assert ingest_worker.request("POST", "/api/ingest/segment", b"[]", "application/json", TOKEN)[0] == 400
        assert ingest_worker.request("POST", "/api/ingest/segment", b"{}", "application/x-ndjson", TOKEN)[0] == 415
        calls = {"batch": [as_track_call(event)] * 1001}
        assert ingest_worker.request("POST", "/api/ingest/segment", orjson.dumps(calls), "application/json", TOKEN)[0] == 413

    def test_a_segment_event_map_file_names_the_types(self, start_worker, tmp_path) -> None:
        mapping = tmp_path / "segment.yaml"
        mapping.write_text('"Order Completed": purchase\n"Demo Requested": contact_made\n')
        worker = start_worker(env={"JOURNEY_INGEST_TOKEN": TOKEN, "JOURNEY_SEGMENT_EVENTS": str(mapping)})
        event = {"event_id": "s1", "lead_id": "S1", "type": "purchase", "occurred_at": "2026-09-01T10:00:00Z", "amount": 49.9, "currency": "EUR"}
        calls = [as_track_call(event, "Order Completed"), as_track_call({**event, "event_id": "s2"}, "purchase")]
        status, body = worker.request("POST", "/api/ingest/segment", orjson.dumps({"batch": calls}), "application/json", TOKEN)
        assert status == 200 and [r["status"] for r in body["results"]] == ["accepted", "rejected"], body
        wait_for(lambda: worker.get("/api/leads/S1")[0] == 200, 30, "lead S1 projected")
        lead = worker.get("/api/leads/S1")[1]
        assert lead["stage"] == "purchase" and lead["revenue"] == {"EUR": 49.9}, lead

    def test_a_bad_segment_event_map_stops_the_worker_with_a_clear_error(self, tmp_path) -> None:
        import os
        import subprocess

        from tests.integration.conftest import JOURNEY

        mapping = tmp_path / "segment.yaml"
        mapping.write_text("on: purchase\n")
        done = subprocess.run([JOURNEY, "worker", "--broker", "kafka://127.0.0.1:1"], env={**os.environ, "JOURNEY_SEGMENT_EVENTS": str(mapping)},
                              capture_output=True, timeout=60, text=True)
        assert done.returncode == 1 and "JOURNEY_SEGMENT_EVENTS" in done.stderr and "quote it" in done.stderr and "Traceback" not in done.stderr
