"""Every HTTP endpoint under hostile input: each answer is JSON with a sensible status, the worker lives,
and every event it accepted is projected (issue 4)."""

from __future__ import annotations

import urllib.parse

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.conftest import report_when_counted

pytestmark = pytest.mark.timeout(300)

CONTENT_TYPES = [
    "application/json", "application/x-ndjson", "text/plain", "application/xml", "", "multipart/form-data", "application/json; charset=latin-1",
    "application/cloudevents+json", "application/cloudevents-batch+json",
]
VALID = orjson.dumps({"event_id": "v", "lead_id": "fuzz", "type": "ad_seen", "occurred_at": "2026-09-01T10:00:00Z"})
# The same event as a CloudEvent and as a Segment track call (SPEC §8)
CLOUDEVENT = orjson.dumps({"specversion": "1.0", "id": "v", "source": "/fuzz", "type": "ad_seen", "subject": "fuzz", "time": "2026-09-01T10:00:00Z"})
TRACK = orjson.dumps({"type": "track", "event": "ad_seen", "userId": "fuzz", "messageId": "v", "timestamp": "2026-09-01T10:00:00Z"})

bodies = st.one_of(
    st.binary(max_size=2000),
    st.just(b"[" * 5000 + b"]" * 5000),
    st.just(b'[{"a": ' + b"9" * 5000 + b"}]"),
    st.just(b"[" + b",".join([VALID] * 3) + b"]"),
    st.just(CLOUDEVENT),
    st.just(b"[" + CLOUDEVENT + b", {}, " + CLOUDEVENT.replace(b'"1.0"', b'"0.3"') + b"]"),
    st.just(TRACK),
    st.just(b'{"batch": [' + TRACK + b', {"type": "identify"}, {"type": "track", "event": "nope"}, 7]}'),
    st.just(b"\xff\xfe" + VALID),
    st.lists(st.sampled_from([VALID, b"{}", b"null", b"[1]", b'{"event_id": 1e999}', b"\xed\xa0\x80"]), max_size=20).map(b"\n".join),
)


@pytest.fixture(scope="module")
def hostile_worker(tmp_path_factory):
    from streams.net import free_port
    from streams.tools.broker import EmbeddedBroker
    from tests.integration.conftest import Worker

    tmp = tmp_path_factory.mktemp("hostile")
    with EmbeddedBroker(free_port(), log=tmp / "broker.log") as broker:
        worker = Worker(broker.url, tmp / "w", tmp / "w.log", env={"JOURNEY_DEMO": "1"}).start()
        try:
            yield worker.wait_ready()
        finally:
            worker.stop()


class TestHostileHttp:
    accepted = 0

    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(body=bodies, content_type=st.sampled_from(CONTENT_TYPES))
    def test_ingest_answers_every_body_in_json(self, hostile_worker, body: bytes, content_type: str) -> None:
        status, answer = hostile_worker.request("POST", "/api/events", body, content_type or None)
        assert status in (200, 400, 413, 415), (status, answer)
        assert isinstance(answer, dict)
        if status == 200:
            assert answer["accepted"] + answer["rejected"] == len(answer["results"])
            TestHostileHttp.accepted += answer["accepted"]

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(body=bodies, content_type=st.sampled_from(CONTENT_TYPES))
    def test_segment_ingest_answers_every_body_in_json(self, hostile_worker, body: bytes, content_type: str) -> None:
        status, answer = hostile_worker.request("POST", "/api/ingest/segment", body, content_type or None)
        assert status in (200, 400, 413, 415), (status, answer)
        assert isinstance(answer, dict)
        if status == 200:
            assert answer["accepted"] + answer["rejected"] + answer["ignored"] == len(answer["results"])
            TestHostileHttp.accepted += answer["accepted"]

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(lead=st.text(min_size=1, max_size=300))
    def test_any_lead_id_in_the_path_is_a_json_answer(self, hostile_worker, lead: str) -> None:
        status, answer = hostile_worker.get("/api/leads/" + urllib.parse.quote(lead, safe=""))
        assert status in (200, 404), (status, answer)
        assert isinstance(answer, dict)

    @pytest.mark.parametrize("path", ["/api/report?watermark=abc", "/internal/partial?watermark=-", "/internal/partial?watermark=99999999999999999999999", "/api/leads/", "/no/such/path", "/api/leads/%7B%7D"])
    def test_odd_queries_do_not_break_the_worker(self, hostile_worker, path: str) -> None:
        status, _ = hostile_worker.get(path)
        assert status in (200, 404, 503)

    def test_a_wrong_method_is_a_json_405(self, hostile_worker) -> None:
        status, answer = hostile_worker.request("DELETE", "/api/report")
        assert status == 405 and answer["error"]

    def test_the_worker_is_alive_and_counted_every_accepted_event(self, hostile_worker) -> None:
        assert hostile_worker.get("/healthz")[0] == 200
        assert "journey_events" in hostile_worker.text("/metrics?x=%00")
        # Every accepted copy of the one valid event reaches the projection: once valid, the rest duplicates.
        report = report_when_counted(hostile_worker, TestHostileHttp.accepted)
        assert report["events"]["invalid"] == 0
        assert report["events"]["valid"] + report["events"]["duplicates"] == TestHostileHttp.accepted
