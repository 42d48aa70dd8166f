"""Small builders shared by the tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

# Keys of the golden expected files that belong to SPEC sections not built yet (issue 27: §10).
# A key leaves this set in the commit that builds it.
UNBUILT: frozenset[str] = frozenset()


def built(expected: Any) -> Any:
    """An expected report, comparison, lead or list of leads without the keys journey does not build yet."""
    if isinstance(expected, list):
        return [built(item) for item in expected]
    if isinstance(expected, dict):
        return {key: built(value) if key in ("baseline", "candidate") else value for key, value in expected.items() if key not in UNBUILT}
    return expected


def same_instants(a: Any, b: Any) -> bool:
    """Equal, comparing RFC 3339 strings as instants (SPEC allows any offset spelling)."""
    return _normal(a) == _normal(b)


def _normal(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, str) and len(value) >= 20 and value[4:5] == "-" and value[10:11] == "T":
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return value
    return value


def event(lead: str = "L1", eid: str = "e1", kind: str = "ad_seen", at: str = "2026-09-01T10:00:00Z", **extra: Any) -> dict[str, Any]:
    return {"event_id": eid, "lead_id": lead, "type": kind, "occurred_at": at, **extra}


def raw(**fields: Any) -> bytes:
    return orjson.dumps(event(**fields))


CORE_FIELDS = ("event_id", "lead_id", "type", "occurred_at")


def as_cloudevent(event: dict[str, Any], dotted: bool = True) -> dict[str, Any]:
    """A journey event as a platform sends it as a CloudEvent (SPEC §8), the type bare or dotted;
    an anonymous event (no lead_id) has no `subject`, its anonymous_id in `data` (SPEC §9)."""
    data = {key: value for key, value in event.items() if key not in CORE_FIELDS}
    kind = f"com.example.journey.{event['type']}" if dotted else event["type"]
    item = {"specversion": "1.0", "id": event["event_id"], "source": "https://crm.example.com", "type": kind,
            "time": event["occurred_at"], "datacontenttype": "application/json", "data": data}
    if event.get("lead_id") is not None:
        item["subject"] = event["lead_id"]
    return item


def as_segment_call(event: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """A journey event as a Segment call (SPEC §8, §9): an `identified` event with nothing but its ids as
    an identify call, any other as a track call, the event named `name` or by its type."""
    ids = {"userId": event.get("lead_id"), "anonymousId": event.get("anonymous_id")}
    if event["type"] == "identified" and set(event) <= {*CORE_FIELDS, "anonymous_id"}:
        return {"type": "identify", **ids, "messageId": event["event_id"], "timestamp": event["occurred_at"]}
    return {**as_track_call(event, name), **{key: value for key, value in ids.items() if value is not None}}


def as_track_call(event: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """A journey event as a Segment track call (SPEC §8), the event named `name` or by its type."""
    campaign = {theirs: event[ours] for theirs, ours in (("source", "source"), ("medium", "channel"), ("name", "campaign")) if ours in event}
    properties = dict(event.get("properties") or {})
    for theirs, ours in (("revenue", "amount"), ("currency", "currency"), ("inbound", "inbound"), ("method", "method")):
        if ours in event:
            properties[theirs] = event[ours]
    return {"type": "track", "event": name or event["type"], "userId": event.get("lead_id"), "messageId": event["event_id"],
            "timestamp": event["occurred_at"], "context": {"campaign": campaign, "ip": "203.0.113.9"}, "properties": properties}
