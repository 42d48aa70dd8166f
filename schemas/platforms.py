"""What platforms already send, mapped to journey events (SPEC §8): CloudEvents 1.0 in
structured JSON mode, and Segment calls (track, and identify and alias as links: SPEC §9).

Each mapper turns one parsed item into the journey event it stands for (a
dict, then judged by `decode` like any record), a `Rejection` with a reason
in the platform's own terms, or `IGNORED` (a Segment call that is not a
track call). A reason from judging the mapped event names the platform's
field too (`translate`), so a sender can find what to fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from schemas.decode import Rejection, json_kind, show
from schemas.events import EVENT_TYPES

IGNORED: Final = "ignored"
UNMAPPED: Final = "unmapped event"
CLOUDEVENTS_VERSION = "1.0"
_REQUIRED = ("id", "source", "specversion", "type")
_JOURNEY_FROM_ATTRIBUTE = {"id": "event_id", "subject": "lead_id", "time": "occurred_at", "type": "type"}
_CORE = ("event_id", "lead_id", "type", "occurred_at")


# -- CloudEvents ----------------------------------------------------------------------------


def from_cloudevent(item: Any) -> dict[str, Any] | Rejection:
    """One CloudEvent (structured JSON mode) as a journey event.

    `id` -> event_id, `subject` -> lead_id, `time` -> occurred_at, `type` -> type (bare, or
    dotted with the journey type last); the optional fields come from `data` only, `anonymous_id`
    among them, and `subject` may be absent when `data.anonymous_id` is there (SPEC §9)."""
    if not isinstance(item, dict):
        return Rejection(f"not a JSON object: a CloudEvent is an object, got a JSON {json_kind(item)}")
    for name in _REQUIRED:
        if name not in item:
            return Rejection(f"{name}: missing (a required CloudEvents attribute)")
        if not isinstance(item[name], str) or not item[name]:
            return Rejection(f"{name}: must be a non-empty string, got {show(item[name])}")
    if item["specversion"] != CLOUDEVENTS_VERSION:
        return Rejection(f"specversion: only CloudEvents {CLOUDEVENTS_VERSION} is accepted, got {show(item['specversion'])}")
    if "time" not in item:
        return Rejection("time: missing (journey takes the event time from it)")
    if "data_base64" in item:
        return Rejection("data_base64: binary data is not accepted; send the journey fields in data, a JSON object")
    data = item.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return Rejection(f"data: must be a JSON object holding the optional journey fields, got a JSON {json_kind(data)}")
    if "subject" not in item and data.get("anonymous_id") is None:
        return Rejection("subject: missing (journey takes the lead id from it; an anonymous event puts its anonymous_id in data instead)")
    kind = item["type"].rsplit(".", 1)[-1]
    optional = {key: value for key, value in data.items() if key not in _CORE}
    event = {**optional, "event_id": item["id"], "type": kind, "occurred_at": item["time"]}
    if "subject" in item:
        event["lead_id"] = item["subject"]
    return event


CLOUDEVENT_FIELDS = {"event_id": "id", "lead_id": "subject", "occurred_at": "time", "type": "type"}


# -- Segment --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentEvents:
    """Segment event names to journey types (JOURNEY_SEGMENT_EVENTS)."""

    names: Mapping[str, str]
    origin: str

    @classmethod
    def load(cls, path: str | Path) -> SegmentEvents:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SegmentEventsError(f"{path}: cannot read the Segment event map: {getattr(exc, 'strerror', None) or exc}") from None
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, origin: str) -> SegmentEvents:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark else ""
            raise SegmentEventsError(f"{origin}: {where}not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
        if not isinstance(data, dict) or not data:
            raise SegmentEventsError(f"{origin}: must be a mapping of Segment event names to journey types, like 'Order Completed: purchase'")
        names: dict[str, str] = {}
        for name, kind in data.items():
            if not isinstance(name, str):
                raise SegmentEventsError(f"{origin}: the name {name!r} is not a string (YAML reads bare on/off/yes/no as true/false); quote it")
            if kind not in EVENT_TYPES:
                raise SegmentEventsError(f"{origin}: {name!r} maps to {kind!r}, which is not one of {', '.join(EVENT_TYPES)}")
            names[name] = kind
        return cls(names, origin)


class SegmentEventsError(ValueError):
    """A Segment event map that cannot be used; the message names file, entry and fix."""


DEFAULT_SEGMENT_EVENTS = Path(__file__).with_name("segment-events.yaml")  # also shipped as deploy/segment-events.yaml


def default_segment_events() -> SegmentEvents:
    return SegmentEvents.load(DEFAULT_SEGMENT_EVENTS)

SEGMENT_FIELDS = {
    "event_id": "messageId",
    "lead_id": "userId",
    "anonymous_id": "anonymousId",
    "occurred_at": "timestamp",
    "type": "event",
    "source": "context.campaign.source",
    "channel": "context.campaign.medium",
    "campaign": "context.campaign.name",
    "amount": "properties.revenue",
    "currency": "properties.currency",
    "inbound": "properties.inbound",
    "method": "properties.method",
    "properties": "properties",
}
_CAMPAIGN = (("source", "source"), ("medium", "channel"), ("name", "campaign"))
_PROPERTIES = (("revenue", "amount"), ("currency", "currency"), ("inbound", "inbound"), ("method", "method"))


NO_USER = "userId/anonymousId: missing (a Segment call needs a userId, or an anonymousId when the user is not known yet)"
ALIAS_FIELDS = {**SEGMENT_FIELDS, "anonymous_id": "previousId"}  # an alias call names the earlier id previousId
_LINKS = ("identify", "alias")


def segment_fields(call: Any) -> Mapping[str, str]:
    """The Segment field each journey field of a call's event comes from (for reasons in Segment's terms)."""
    return ALIAS_FIELDS if isinstance(call, dict) and call.get("type") == "alias" else SEGMENT_FIELDS


def from_segment(call: Any, events: SegmentEvents) -> dict[str, Any] | Rejection | str:
    """One Segment call as a journey event: a track call as its mapped type, an identify or alias
    call as an `identified` link (SPEC §9); `IGNORED` for calls of other types."""
    if not isinstance(call, dict):
        return Rejection(f"not a JSON object: a Segment call is an object, got a JSON {json_kind(call)}")
    kind = call.get("type")
    if not isinstance(kind, str) or not kind:
        return Rejection(f"type: missing or not a string (a Segment call type such as track), got {show(kind)}")
    if kind in _LINKS:
        return _link(call, kind)
    if kind != "track":
        return IGNORED
    name = call.get("event")
    if not isinstance(name, str):
        return Rejection(f"event: missing or not a string (the Segment event name), got {show(name)}")
    journey_type = events.names.get(name)
    if journey_type is None:
        return Rejection(UNMAPPED)
    event: dict[str, Any] = {
        "event_id": call.get("messageId"), "lead_id": _id(call.get("userId")), "anonymous_id": _id(call.get("anonymousId")),
        "type": journey_type, "occurred_at": call.get("timestamp"),
    }
    if event["lead_id"] is None and event["anonymous_id"] is None:
        return Rejection(NO_USER)
    context = call.get("context", {})
    campaign = context.get("campaign", {}) if isinstance(context, dict) else None
    if not isinstance(context, dict) or not isinstance(campaign, dict):
        where = "context" if not isinstance(context, dict) else "context.campaign"
        return Rejection(f"{where}: must be an object, got a JSON {json_kind(context if where == 'context' else campaign)}")
    for key, field in _CAMPAIGN:
        if key in campaign:
            event[field] = campaign[key]
    properties = call.get("properties", {})
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        return Rejection(f"properties: must be an object, got a JSON {json_kind(properties)}")
    rest = dict(properties)
    for key, field in _PROPERTIES:
        if key in rest:
            event[field] = rest.pop(key)
    if rest:
        event["properties"] = rest
    return _present(event)


def _link(call: dict[str, Any], kind: str) -> dict[str, Any]:
    """An identify call (userId and anonymousId) or an alias call (userId and previousId) as an
    `identified` event: a link of the anonymous id to the lead."""
    anonymous = call.get("anonymousId") if kind == "identify" else call.get("previousId")
    event = {"event_id": call.get("messageId"), "lead_id": _id(call.get("userId")), "anonymous_id": _id(anonymous), "type": "identified",
             "occurred_at": call.get("timestamp")}
    return _present(event)


def _id(value: Any) -> Any:
    """An id field as journey reads it: Segment senders write an absent id as null or "" alike."""
    return None if value == "" else value


def _present(event: dict[str, Any]) -> dict[str, Any]:
    """Absent optional fields left out, so that a missing required one is reported as missing."""
    return {key: value for key, value in event.items() if value is not None or key not in _CORE}


# -- reasons in the sender's terms ------------------------------------------------------------


def translate(reason: str, fields: Mapping[str, str], optional_prefix: str = "") -> str:
    """A reason from judging a mapped event, its journey field renamed to the sender's.

    `lead_id: missing` from a Segment call reads `userId/anonymousId (lead_id): missing`."""
    field, sep, rest = reason.partition(":")
    if not sep or not re.fullmatch(r"[a-z_]+(\.[\w.]+)?", field):
        return reason
    head, _, tail = field.partition(".")
    theirs = fields.get(head)
    if theirs is None:
        if not optional_prefix:
            return reason
        theirs = f"{optional_prefix}{head}"
    if theirs == head:
        return reason
    return f"{theirs}{'.' + tail if tail else ''} ({field}):{rest}"
