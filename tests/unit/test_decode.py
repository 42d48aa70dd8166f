"""SPEC §2: what a valid journey event is, and what every invalid record is told."""

from __future__ import annotations

import importlib

import orjson
import pytest

from schemas import EVENT_TYPES, Event, Rejection, decode, format_time, parse_time
from tests.helpers import event, raw


def rejected(record: bytes) -> str:
    result = decode(record)
    assert isinstance(result, Rejection), f"accepted {record!r}"
    return result.reason


class TestValidEvents:
    @pytest.mark.parametrize("kind", EVENT_TYPES)
    def test_each_type_is_accepted(self, kind: str) -> None:
        result = decode(raw(kind=kind, anonymous_id="cookie-1") if kind == "identified" else raw(kind=kind))
        assert isinstance(result, Event)
        assert EVENT_TYPES[result.type] == kind

    def test_occurred_at_with_z_and_with_offset_are_the_same_instant(self) -> None:
        utc = decode(raw(at="2026-09-01T10:00:00Z"))
        offset = decode(raw(at="2026-09-01T12:00:00+02:00"))
        assert utc.occurred_at == offset.occurred_at == parse_time("2026-09-01T10:00:00.000000Z")

    def test_fractional_seconds_are_kept_to_the_microsecond(self) -> None:
        a = decode(raw(at="2026-09-01T10:00:00.000001Z"))
        b = decode(raw(at="2026-09-01T10:00:00Z"))
        assert a.occurred_at - b.occurred_at == 1

    def test_unknown_top_level_fields_are_ignored(self) -> None:
        assert isinstance(decode(raw(future_field={"nested": [1, 2, 3]}, x=None)), Event)

    def test_all_optional_fields_are_accepted(self) -> None:
        record = raw(
            kind="purchase", source="crm", channel="email", campaign="c1", method="phone", currency="EUR",
            inbound=False, amount=12.5, properties={"a": [1]}, schema_version=1,
        )
        assert isinstance(decode(record), Event)

    def test_inbound_is_allowed_on_any_type(self) -> None:
        assert decode(raw(kind="ad_seen", inbound=True)).inbound is True

    def test_amount_may_be_an_integer_or_zero(self) -> None:
        assert isinstance(decode(raw(kind="purchase", amount=0)), Event)
        assert isinstance(decode(raw(kind="purchase", amount=1200)), Event)

    def test_null_optional_fields_count_as_absent(self) -> None:
        assert isinstance(decode(raw(source=None, inbound=None, amount=None, properties=None, schema_version=None)), Event)

    def test_ids_of_128_characters_are_accepted(self) -> None:
        assert isinstance(decode(raw(lead="L" * 128, eid="é" * 128)), Event)

    def test_a_record_of_exactly_64_kib_is_accepted(self) -> None:
        record = raw(properties={"pad": ""})
        record = raw(properties={"pad": "x" * (64 * 1024 - len(record))})
        assert len(record) == 64 * 1024
        assert isinstance(decode(record), Event)


class TestInvalidRecords:
    def test_a_record_over_64_kib_is_invalid(self) -> None:
        record = raw(properties={"pad": "x" * (64 * 1024)})
        assert "64 KiB" in rejected(record)

    @pytest.mark.parametrize("record", [b"not json", b'{"a": ', b"\x00\x01\x02", b'{"a": "\xff"}', b'{"a": NaN}'])
    def test_not_utf8_json_is_invalid(self, record: bytes) -> None:
        assert rejected(record).startswith("not UTF-8 JSON")

    @pytest.mark.parametrize("record,kind", [(b"[1, 2]", "array"), (b'"s"', "string"), (b"3", "number"), (b"null", "null"), (b"true", "boolean")])
    def test_a_json_value_that_is_not_an_object_is_invalid(self, record: bytes, kind: str) -> None:
        assert rejected(record) == f"not a JSON object but a JSON {kind}"

    @pytest.mark.parametrize("field", ["event_id", "lead_id", "type", "occurred_at"])
    def test_a_missing_required_field_is_invalid(self, field: str) -> None:
        fields = event()
        del fields[field]
        assert field in rejected(orjson.dumps(fields))

    @pytest.mark.parametrize("field", ["event_id", "lead_id"])
    @pytest.mark.parametrize("value", ["", "x" * 129, 42, None, ["a"]])
    def test_ids_must_be_strings_of_1_to_128_characters(self, field: str, value: object) -> None:
        fields = event()
        fields[field] = value
        assert rejected(orjson.dumps(fields)).startswith(field)

    @pytest.mark.parametrize("value", ["webinar_joined", None, 3, "AD_SEEN"])
    def test_an_unknown_type_is_invalid(self, value: object) -> None:
        assert rejected(orjson.dumps(event(kind=value))).startswith("type:")

    @pytest.mark.parametrize(
        "value",
        [
            "2026-09-01T10:00:00",  # no offset
            "2026-09-01 10:00:00Z",
            "2026-09-01",
            "2026-13-45T10:00:00Z",
            "2026-02-30T10:00:00Z",
            "2026-09-01T24:00:00Z",
            "2026-09-01T10:00:00+25:00",
            "yesterday",
            "",
            1788000000,
            1788000000.5,
            True,
            "２０２６-09-01T10:00:00Z",  # non-ASCII digits
        ],
    )
    def test_occurred_at_must_be_rfc3339_with_offset(self, value: object) -> None:
        assert rejected(orjson.dumps(event(at=value))).startswith("occurred_at: must be an RFC 3339 time with offset")

    @pytest.mark.parametrize("field", ["source", "channel", "campaign", "method", "currency"])
    def test_optional_string_fields_must_be_strings(self, field: str) -> None:
        assert rejected(orjson.dumps(event(**{field: 7}))).startswith(field)

    @pytest.mark.parametrize("value", ["yes", 1, 0, "true"])
    def test_inbound_must_be_a_json_boolean(self, value: object) -> None:
        assert rejected(orjson.dumps(event(kind="contact_made", inbound=value))).startswith("inbound")

    @pytest.mark.parametrize("value", [-5, -0.01, "12", True])
    def test_amount_must_be_a_number_at_least_zero(self, value: object) -> None:
        assert rejected(orjson.dumps(event(kind="purchase", amount=value))).startswith("amount")

    @pytest.mark.parametrize("value", [10**12 + 1, 1e12 + 0.01, 2**63 - 1, 1e300])
    def test_an_amount_over_10_to_the_12_is_invalid_and_the_reason_says_so(self, value: float) -> None:
        reason = rejected(orjson.dumps(event(kind="purchase", amount=value)))
        assert reason.startswith("amount") and "1000000000000" in reason, reason

    @pytest.mark.parametrize("value", [10**12, 1e12, 999_999_999_999.99])
    def test_an_amount_of_at_most_10_to_the_12_is_valid(self, value: float) -> None:
        assert isinstance(decode(orjson.dumps(event(kind="purchase", amount=value))), Event)

    def test_an_amount_too_large_for_a_double_is_invalid(self) -> None:
        assert rejected(b'{"event_id":"e","lead_id":"l","type":"purchase","occurred_at":"2026-09-01T10:00:00Z","amount":1e400}')

    @pytest.mark.parametrize("value", ["x", [1], 3])
    def test_properties_must_be_an_object(self, value: object) -> None:
        assert rejected(orjson.dumps(event(properties=value))).startswith("properties")

    @pytest.mark.parametrize("value", [2, 99])
    def test_a_newer_schema_version_is_invalid_and_says_to_upgrade(self, value: int) -> None:
        assert "upgrade journey" in rejected(orjson.dumps(event(schema_version=value)))

    @pytest.mark.parametrize("value", [0, -1, "1", 1.0, True])
    def test_schema_version_must_be_a_known_integer(self, value: object) -> None:
        assert rejected(orjson.dumps(event(schema_version=value))).startswith("schema_version")

    def test_the_reason_shows_the_offending_value(self) -> None:
        assert "'yes'" in rejected(orjson.dumps(event(kind="contact_made", inbound="yes")))


class TestUpcasting:
    def test_an_upcaster_upgrades_an_old_version_before_validation(self, monkeypatch: pytest.MonkeyPatch) -> None:
        decode_module = importlib.import_module("schemas.decode")
        monkeypatch.setattr(decode_module, "CURRENT_SCHEMA_VERSION", 2)
        monkeypatch.setattr(decode_module, "UPCASTERS", {2: lambda old: {**old, "lead_id": old["lead"]}})
        record = orjson.dumps({"event_id": "e", "lead": "L9", "type": "ad_seen", "occurred_at": "2026-09-01T10:00:00Z", "schema_version": 1})
        result = decode_module._validated(orjson.loads(record))
        assert isinstance(result, Event) and result.lead_id == "L9"

    def test_a_version_with_no_upcaster_is_invalid(self, monkeypatch: pytest.MonkeyPatch) -> None:
        decode_module = importlib.import_module("schemas.decode")
        monkeypatch.setattr(decode_module, "CURRENT_SCHEMA_VERSION", 3)
        assert "not supported" in decode_module._validated(event(schema_version=1)).reason


class TestTimeFormat:
    @pytest.mark.parametrize(
        "text",
        ["0001-01-01T00:00:00.000000Z", "0999-05-01T00:00:00.500000Z", "1969-12-31T23:59:59.500000Z", "2026-09-01T10:00:00.000000Z", "9999-12-31T23:59:59.999999Z"],
    )
    def test_every_time_is_written_back_as_rfc_3339_with_a_four_digit_year(self, text: str) -> None:
        assert format_time(parse_time(text)) == text

    def test_an_offset_is_written_as_the_same_instant_in_utc(self) -> None:
        assert format_time(parse_time("2026-09-01T12:00:00.25+02:00")) == "2026-09-01T10:00:00.250000Z"
