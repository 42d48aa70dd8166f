"""The fast decoding path never disagrees with the pydantic model, which is the contract."""

from __future__ import annotations

import importlib
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import EVENT_TYPES, Event, Rejection, decode, decode_object

decode_module = importlib.import_module("schemas.decode")

json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=6)
times = st.sampled_from(["2026-09-01T10:00:00Z", "2026-09-01T10:00:00.5+02:00", "2026-09-01T10:00:00", "2026-02-30T00:00:00Z", "2026-09-01T10:00:00.1234567-05:00"])
ids = st.text(min_size=0, max_size=130) | st.just("x" * 128) | st.just("x" * 129)


def _owned(event: dict[str, Any]) -> dict[str, Any]:
    """SPEC §2 and §9: a lead id or an anonymous id (a null lead id beside one is absent), and both on a link."""
    if "lead_id" not in event and "anonymous_id" not in event:
        event["lead_id"] = "L1"
    if event["type"] == "identified":
        event.setdefault("lead_id", "L1")
        event.setdefault("anonymous_id", "A1")
    return event


valid_events = st.fixed_dictionaries(
    {
        "event_id": st.text(min_size=1, max_size=128),
        "type": st.sampled_from(EVENT_TYPES),
        "occurred_at": times,
    },
    optional={
        "lead_id": st.text(min_size=1, max_size=128),
        "anonymous_id": st.text(min_size=1, max_size=128),
        "source": st.text(max_size=5),
        "channel": st.text(max_size=5),
        "currency": st.text(max_size=5),
        "inbound": st.booleans(),
        "amount": st.floats(min_value=0, allow_infinity=False) | st.integers(min_value=0, max_value=2**63 - 1) | st.sampled_from([10**12, 10**12 + 1, 1e12, 1e12 + 0.0001]),
        "properties": st.dictionaries(st.text(max_size=3), json_scalars, max_size=2),
        "schema_version": st.sampled_from([1, 2, 0]),
        "extra": json_values,
    },
).map(_owned)
FIELDS = ["event_id", "lead_id", "anonymous_id", "type", "occurred_at", "source", "channel", "campaign", "method", "currency", "inbound", "amount", "properties", "schema_version"]
corruptions = st.dictionaries(st.sampled_from(FIELDS), json_values | ids, max_size=2)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with up to two fields replaced by any JSON value, or removed."""
    obj = draw(valid_events)
    for key, value in draw(corruptions).items():
        if draw(st.booleans()) and key in obj:
            del obj[key]
        else:
            obj[key] = value
    return obj


tricky_strings = st.sampled_from(['"\\ud800"', '"\\u0041"', '"a\\"b"', '"\\udc00\\ud800"', '"\\ud83d\\ude00"', "1e400", "-0.0", "18446744073709551616", "[]", "{}"])


@st.composite
def raw_records(draw: st.DrawFn) -> bytes:
    """JSON text of such an event, sometimes with one field spelled as raw JSON that orjson cannot produce."""
    obj = draw(events())
    text = orjson.dumps(obj)
    if draw(st.booleans()):
        key = draw(st.sampled_from(FIELDS))
        text = text[:-1] + (b"," if len(text) > 2 else b"") + f'"{key}":{draw(tricky_strings)}'.encode() + b"}"
    return text


class TestFastPathAgreesWithTheModel:
    @settings(max_examples=1000, deadline=None)
    @given(raw_records())
    def test_the_fast_decoder_gives_the_same_answer_as_the_model(self, record: bytes) -> None:
        fast = decode(record)
        by_model = decode_module._decode_slowly(record)
        assert type(fast) is type(by_model)
        if isinstance(fast, Event):
            assert fast == by_model

    @settings(max_examples=300, deadline=None)
    @given(events())
    def test_decoding_a_parsed_object_gives_the_same_answer_as_decoding_its_bytes(self, obj: dict[str, Any]) -> None:
        from_bytes = decode(orjson.dumps(obj))
        from_object = decode_object(obj)
        assert type(from_bytes) is type(from_object)
        if isinstance(from_bytes, Event):
            assert from_bytes == from_object


class TestHostileBytes:
    @settings(max_examples=500, deadline=None)
    @given(st.binary(max_size=300))
    def test_any_bytes_are_accepted_or_rejected_with_a_reason(self, record: bytes) -> None:
        result = decode(record)
        assert isinstance(result, (Event, Rejection))
        if isinstance(result, Rejection):
            assert result.reason

    def test_deep_nesting_is_rejected_not_crashed(self) -> None:
        assert isinstance(decode(b"[" * 100_000 + b"]" * 100_000), Rejection)
        nested = b'{"event_id":"e","lead_id":"l","type":"ad_seen","occurred_at":"2026-09-01T10:00:00Z","properties":' + b'{"a":' * 2000 + b"1" + b"}" * 2001
        assert isinstance(decode(nested), (Event, Rejection))
