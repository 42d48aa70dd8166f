"""Raw record bytes to an `Event` or a `Rejection` with a reason a person can act on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import orjson
from pydantic import ValidationError

from schemas.events import CURRENT_SCHEMA_VERSION, EVENT_TYPES, JOURNEY_EVENT, MAX_RECORD_BYTES, OUT_OF_CALENDAR, TYPE_INDEX, parse_time
from schemas.fast import FAST_DECODER as _FAST_DECODER
from schemas.fast import FAST_ERRORS as _FAST_ERRORS


class Event(NamedTuple):
    """What the projections need of a valid event; `type` is an index into EVENT_TYPES.

    `lead_id` is None for an anonymous event (SPEC §9), whose owner is then its
    `anonymous_id`; an event with both is a link."""

    lead_id: str | None
    event_id: str
    type: int
    occurred_at: int  # microseconds since the epoch, UTC
    inbound: bool | None
    # What attribution needs (SPEC §4); None is absent.
    source: str | None = None
    channel: str | None = None
    campaign: str | None = None
    currency: str | None = None
    amount: float | None = None
    anonymous_id: str | None = None


def owner(event: Event) -> str:
    """An event's owner, also its record key (SPEC §2): its lead id, else its anonymous id."""
    return event.lead_id if event.lead_id is not None else event.anonymous_id  # type: ignore[return-value]


class Rejection(NamedTuple):
    reason: str  # for a person: what is wrong, where, and the value found

    @property
    def kind(self) -> str:
        """A short, stable class of the reason, for counting: too_large, not_json, not_object, or the field at fault."""
        for prefix, kind in _KINDS:
            if self.reason.startswith(prefix):
                return kind
        field = self.reason.split(":", 1)[0]
        return field if field.replace(".", "_").isidentifier() else "invalid"


# Upcasters turn version N of the event into version N + 1, before validation.
# Version 1 is the first; add `2: upcast_v1_v2` style entries here when it changes.
UPCASTERS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}

_TYPE_LIST = ", ".join(EVENT_TYPES)
_KINDS = (("record is", "too_large"), ("not UTF-8 JSON", "not_json"), ("not a JSON object", "not_object"))


def decoder(parse: Callable[[str], int] = parse_time) -> Callable[[bytes], Event | Rejection]:
    """`decode` with another reader of occurred_at, one that accepts and gives exactly what
    `parse_time` does (projections' C one, checked against it by a property test)."""
    fast_decode, fast_errors, new_event, current, limit, slowly = _FAST_DECODER.decode, _FAST_ERRORS, _new_event, CURRENT_SCHEMA_VERSION, MAX_RECORD_BYTES, _decode_slowly
    identified = TYPE_INDEX["identified"]

    def decode(raw: bytes) -> Event | Rejection:
        if len(raw) > limit:
            return Rejection(f"record is {len(raw)} bytes, over the {limit}-byte (64 KiB) limit")
        try:
            fast = fast_decode(raw)
        except fast_errors:
            return slowly(raw)
        if fast.schema_version is not None and fast.schema_version != current:
            return slowly(raw)
        if fast.lead_id is None and (fast.anonymous_id is None or fast.index == identified):
            return slowly(raw)  # no owner, or a link without its lead: the model says why
        try:
            micros = parse(fast.occurred_at)
        except ValueError:
            return slowly(raw)
        if fast.index == identified and fast.anonymous_id is None:
            return slowly(raw)
        return new_event(
            Event, (fast.lead_id, fast.event_id, fast.index, micros, fast.inbound, fast.source, fast.channel, fast.campaign, fast.currency, fast.amount, fast.anonymous_id)
        )

    return decode


_new_event = tuple.__new__  # Event(...) without the Python-level __new__ of a NamedTuple: the hot path


def decode_object(obj: dict[str, Any]) -> Event | Rejection:
    """An already parsed JSON object (HTTP ingest), judged by the model."""
    return _validated(obj)


def _decode_slowly(raw: bytes) -> Event | Rejection:
    """Whatever the fast decoder did not accept: the model decides, and says why."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejection(f"not UTF-8 JSON: {exc}")
    if type(obj) is not dict:
        return Rejection(f"not a JSON object but a JSON {json_kind(obj)}")
    return _validated(obj)


def _validated(obj: dict[str, Any]) -> Event | Rejection:
    upcast = _upcast(obj)
    if isinstance(upcast, Rejection):
        return upcast
    try:
        model = JOURNEY_EVENT.validate_python(upcast)
    except ValidationError as exc:
        return Rejection(_reason(exc, upcast))
    amount = None if model.amount is None else float(model.amount)
    return Event(
        model.lead_id, model.event_id, TYPE_INDEX[model.type], parse_time(model.occurred_at), model.inbound,
        model.source, model.channel, model.campaign, model.currency, amount, model.anonymous_id,
    )


def _upcast(obj: dict[str, Any]) -> dict[str, Any] | Rejection:
    """The event at the current schema version, without the version field (the model's default)."""
    version = obj.get("schema_version")
    if version is not None and type(version) is not int:
        return Rejection(f"schema_version: must be an integer, got {show(version)}")
    if version is None:
        version = CURRENT_SCHEMA_VERSION
    if version > CURRENT_SCHEMA_VERSION:
        return Rejection(
            f"schema_version: {version} is newer than this journey understands ({CURRENT_SCHEMA_VERSION}); upgrade journey"
        )
    while version < CURRENT_SCHEMA_VERSION:
        upcaster = UPCASTERS.get(version + 1)
        if upcaster is None:
            return Rejection(f"schema_version: {version} is not supported (known: 1 to {CURRENT_SCHEMA_VERSION})")
        obj = upcaster(obj)
        version += 1
    return {k: v for k, v in obj.items() if k != "schema_version"}


def _reason(exc: ValidationError, obj: dict[str, Any]) -> str:
    return "; ".join(_describe(error, obj) for error in exc.errors(include_url=False))


def _describe(error: dict[str, Any], obj: dict[str, Any]) -> str:
    loc = [str(part) for part in error["loc"]]
    if loc and loc[0] in TYPE_INDEX:
        loc = loc[1:]  # the discriminated union puts the event type first
    field = ".".join(loc) or "event"
    kind = error["type"]
    got = show(error.get("input"))
    if kind == "union_tag_invalid":
        return f"type: {show(obj.get('type'))} is not one of {_TYPE_LIST}"
    if kind == "union_tag_not_found":
        return f"type: missing (one of {_TYPE_LIST})"
    if kind == "value_error" and field == "event":  # a rule across fields (the owner, a link's two ids): its own words
        return str(error["ctx"]["error"])
    if kind == "missing":
        return f"{field}: missing"
    if field == "occurred_at":
        if kind == "value_error" and str(error["ctx"]["error"]) == OUT_OF_CALENDAR:
            return f"occurred_at: {OUT_OF_CALENDAR}, got {got}"
        return f"occurred_at: must be an RFC 3339 time with offset, like 2026-09-01T10:00:00Z, got {got}"
    return f"{field}: {error['msg'].lower()}, got {got}"


def show(value: Any) -> str:
    """A value as a reason quotes it: its repr, cut at 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def json_kind(value: Any) -> str:
    """What JSON value this parsed one is: object, array, string, boolean, null or number."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


decode = decoder()  # raw record bytes to an Event, or a Rejection that says why not
