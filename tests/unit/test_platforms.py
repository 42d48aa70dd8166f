"""SPEC §8: CloudEvents and Segment calls map to exactly the journey event they stand for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import EVENT_TYPES, Event, Rejection, decode
from schemas.platforms import (
    CLOUDEVENT_FIELDS,
    DEFAULT_SEGMENT_EVENTS,
    IGNORED,
    NO_USER,
    SEGMENT_FIELDS,
    UNMAPPED,
    SegmentEvents,
    SegmentEventsError,
    default_segment_events,
    from_cloudevent,
    from_segment,
    segment_fields,
    translate,
)
from tests.helpers import as_cloudevent, as_segment_call
from tests.unit.test_decode_properties import json_values, valid_events

ROOT = Path(__file__).parent.parent.parent
IDENTITY = SegmentEvents({kind: kind for kind in EVENT_TYPES}, "test")
OPTIONAL = ("source", "channel", "campaign", "method", "currency", "inbound", "amount", "properties")


journey_events = valid_events.filter(lambda e: not set(e.get("properties", {})) & {"revenue", "currency", "inbound", "method"})


class TestCloudEvents:
    def test_attributes_and_data_map_to_the_journey_event(self) -> None:
        event = {"event_id": "e1", "lead_id": "L1", "type": "purchase", "occurred_at": "2026-09-01T10:00:00+02:00", "amount": 120.5, "currency": "EUR", "source": "google"}
        mapped = from_cloudevent(as_cloudevent(event))
        assert mapped == event
        assert from_cloudevent(as_cloudevent(event, dotted=False)) == event

    def test_the_source_attribute_is_not_a_journey_field_and_core_fields_come_only_from_attributes(self) -> None:
        item = {**as_cloudevent({"event_id": "e1", "lead_id": "L1", "type": "ad_seen", "occurred_at": "2026-09-01T10:00:00Z"}), "source": "google"}
        item["data"] = {"lead_id": "other", "event_id": "other", "channel": "cpc"}
        assert from_cloudevent(item) == {"event_id": "e1", "lead_id": "L1", "type": "ad_seen", "occurred_at": "2026-09-01T10:00:00Z", "channel": "cpc"}

    @pytest.mark.parametrize("missing", ["id", "source", "specversion", "type", "subject", "time"])
    def test_a_missing_attribute_is_a_rejection_naming_it(self, missing: str) -> None:
        item = as_cloudevent({"event_id": "e1", "lead_id": "L1", "type": "ad_seen", "occurred_at": "2026-09-01T10:00:00Z"})
        del item[missing]
        answer = from_cloudevent(item)
        assert isinstance(answer, Rejection) and answer.reason.startswith(f"{missing}: missing")

    @pytest.mark.parametrize("version", ["0.3", "1", "1.0.2", 1.0])
    def test_another_specversion_is_a_rejection(self, version: Any) -> None:
        item = {**as_cloudevent({"event_id": "e1", "lead_id": "L1", "type": "ad_seen", "occurred_at": "2026-09-01T10:00:00Z"}), "specversion": version}
        answer = from_cloudevent(item)
        assert isinstance(answer, Rejection) and answer.reason.startswith("specversion:")

    @pytest.mark.parametrize("data", [[1], "text", 3, True])
    def test_data_that_is_not_an_object_is_a_rejection(self, data: Any) -> None:
        item = {**as_cloudevent({"event_id": "e1", "lead_id": "L1", "type": "ad_seen", "occurred_at": "2026-09-01T10:00:00Z"}), "data": data}
        assert from_cloudevent(item) == Rejection(from_cloudevent(item).reason) and from_cloudevent(item).reason.startswith("data:")

    def test_a_journey_rule_broken_is_reported_in_cloudevents_terms(self) -> None:
        item = as_cloudevent({"event_id": "e1", "lead_id": "L1", "type": "purchase", "occurred_at": "2026-09-01T10:00:00", "amount": -1})
        reason = decode(orjson.dumps(from_cloudevent(item))).reason
        assert translate(reason, CLOUDEVENT_FIELDS, "data.").startswith(("time (occurred_at):", "data.amount (amount):"))

    def test_an_anonymous_event_has_no_subject_and_its_anonymous_id_in_data(self) -> None:
        event = {"event_id": "e1", "anonymous_id": "cookie-1", "type": "ad_seen", "occurred_at": "2026-09-01T10:00:00Z", "channel": "cpc"}
        item = as_cloudevent(event)
        assert "subject" not in item and from_cloudevent(item) == event
        del item["data"]["anonymous_id"]
        answer = from_cloudevent(item)
        assert isinstance(answer, Rejection) and answer.reason.startswith("subject: missing")

    @settings(max_examples=300, deadline=None)
    @given(journey_events)
    def test_any_journey_event_sent_as_a_cloudevent_decodes_as_itself(self, event: dict[str, Any]) -> None:
        assert decode(orjson.dumps(from_cloudevent(as_cloudevent(event)))) == decode(orjson.dumps(event))

    @settings(max_examples=500, deadline=None)
    @given(json_values | st.dictionaries(st.sampled_from(["specversion", "id", "source", "type", "subject", "time", "data", "data_base64"]), json_values))
    def test_any_json_is_mapped_or_rejected_with_a_reason_never_an_exception(self, item: Any) -> None:
        answer = from_cloudevent(item)
        assert isinstance(answer, dict) or (isinstance(answer, Rejection) and answer.reason)
        if isinstance(answer, dict):
            decode(orjson.dumps(answer))


class TestSegment:
    def test_a_track_call_maps_field_by_field(self) -> None:
        call = {"type": "track", "event": "Order Completed", "userId": "L1", "anonymousId": "anon-1", "messageId": "m1", "timestamp": "2026-09-01T10:00:00.000Z",
                "context": {"campaign": {"source": "google", "medium": "cpc", "name": "fall", "term": "crm"}},
                "properties": {"revenue": 99.5, "currency": "EUR", "inbound": True, "method": "card", "sku": "X1"}}
        assert from_segment(call, default_segment_events()) == {
            "event_id": "m1", "lead_id": "L1", "anonymous_id": "anon-1", "type": "purchase", "occurred_at": "2026-09-01T10:00:00.000Z",
            "source": "google", "channel": "cpc", "campaign": "fall",
            "amount": 99.5, "currency": "EUR", "inbound": True, "method": "card", "properties": {"sku": "X1"},
        }

    @pytest.mark.parametrize("user", [None, "", "absent"])
    def test_without_a_user_id_the_event_is_anonymous(self, user: str | None) -> None:
        call = {"type": "track", "event": "content_read", "anonymousId": "anon-1", "messageId": "m1", "timestamp": "2026-09-01T10:00:00Z"}
        if user != "absent":
            call["userId"] = user
        event = decode(orjson.dumps(from_segment(call, IDENTITY)))
        assert isinstance(event, Event) and (event.lead_id, event.anonymous_id) == (None, "anon-1")

    def test_an_identify_call_is_a_link_of_its_anonymous_id_to_its_user(self) -> None:
        call = {"type": "identify", "userId": "L1", "anonymousId": "anon-1", "messageId": "m1", "timestamp": "2026-09-01T10:00:00Z", "traits": {"email": "x"}}
        assert from_segment(call, IDENTITY) == {"event_id": "m1", "lead_id": "L1", "anonymous_id": "anon-1", "type": "identified", "occurred_at": "2026-09-01T10:00:00Z"}

    def test_an_alias_call_links_its_previous_id(self) -> None:
        call = {"type": "alias", "userId": "L1", "previousId": "anon-1", "messageId": "m2", "timestamp": "2026-09-01T10:00:00Z"}
        assert from_segment(call, IDENTITY) == {"event_id": "m2", "lead_id": "L1", "anonymous_id": "anon-1", "type": "identified", "occurred_at": "2026-09-01T10:00:00Z"}

    def test_a_link_without_its_anonymous_id_is_rejected_in_segment_terms(self) -> None:
        for call, field in (({"type": "identify", "userId": "L1"}, "anonymousId"), ({"type": "alias", "userId": "L1"}, "previousId")):
            call.update(messageId="m1", timestamp="2026-09-01T10:00:00Z")
            reason = decode(orjson.dumps(from_segment(call, IDENTITY))).reason
            assert translate(reason, segment_fields(call)).startswith(f"{field} (anonymous_id): missing"), reason

    @pytest.mark.parametrize("kind", ["page", "screen", "group"])
    def test_calls_other_than_track_identify_and_alias_are_ignored(self, kind: str) -> None:
        assert from_segment({"type": kind, "userId": "L1"}, IDENTITY) == IGNORED

    def test_an_unmapped_event_name_is_rejected_with_that_reason(self) -> None:
        assert from_segment({"type": "track", "event": "Order Completed", "userId": "L1"}, IDENTITY) == Rejection(UNMAPPED)

    def test_a_journey_rule_broken_is_reported_in_segment_terms(self) -> None:
        nobody = from_segment({"type": "track", "event": "purchase", "messageId": "m1", "timestamp": "2026-09-01T10:00:00Z"}, IDENTITY)
        assert nobody == Rejection(NO_USER) and nobody.reason.startswith("userId/anonymousId: missing")
        mapped = from_segment({"type": "track", "event": "purchase", "userId": "L1", "timestamp": "2026-09-01T10:00:00Z"}, IDENTITY)
        assert translate(decode(orjson.dumps(mapped)).reason, SEGMENT_FIELDS) == "messageId (event_id): missing"

    @settings(max_examples=300, deadline=None)
    @given(journey_events)
    def test_any_journey_event_sent_as_a_segment_call_decodes_as_itself(self, event: dict[str, Any]) -> None:
        event.pop("schema_version", None)  # a Segment call has no place for it: version 1
        assert decode(orjson.dumps(from_segment(as_segment_call(event), IDENTITY))) == decode(orjson.dumps(event))

    @settings(max_examples=500, deadline=None)
    @given(json_values | st.dictionaries(st.sampled_from(["type", "event", "userId", "anonymousId", "messageId", "timestamp", "context", "properties"]),
                                         json_values | st.sampled_from(["track", "purchase", "identify"])))
    def test_any_json_is_mapped_ignored_or_rejected_never_an_exception(self, call: Any) -> None:
        answer = from_segment(call, IDENTITY)
        assert answer == IGNORED or isinstance(answer, dict) or (isinstance(answer, Rejection) and answer.reason)
        if isinstance(answer, dict):
            decode(orjson.dumps(answer))


class TestSegmentEventMap:
    def test_the_shipped_example_is_the_built_in_default(self) -> None:
        assert (ROOT / "deploy" / "segment-events.yaml").read_text() == DEFAULT_SEGMENT_EVENTS.read_text()
        names = default_segment_events().names
        assert {names[kind] for kind in EVENT_TYPES} == set(EVENT_TYPES) and names["Order Completed"] == "purchase"

    @pytest.mark.parametrize(
        "text,says",
        [
            ("on: purchase\n", "not a string"),
            ("Order Completed: bought\n", "not one of"),
            ("[a, b]\n", "must be a mapping"),
            ("a: [\n", "not valid YAML"),
            ("", "must be a mapping"),
        ],
    )
    def test_a_bad_map_is_a_clear_error(self, text: str, says: str) -> None:
        with pytest.raises(SegmentEventsError, match=says):
            SegmentEvents.parse(text, "events.yaml")
