"""A lead change on journey.lead-changes: one home for that wire format, both ways.

`{"lead_id", "old": {"stage", "qualification"}, "new": {...}, "cause": {"event_id", "type"}
or {"watermark": true}, "occurred_at", "events"}`, keyed by lead id.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from schemas import format_time, parse_time


class Cause(NamedTuple):
    """The event that moved the lead; see `LeadChange.cause`."""

    event_id: str
    type: str


class LeadChange(NamedTuple):
    lead_id: str
    old_stage: str | None
    old_qualification: str | None  # None: the first change of a lead
    new_stage: str | None
    new_qualification: str
    cause: Cause | None  # None: the watermark moved past the lead's stale time
    occurred_at: int  # microseconds since the epoch
    events: int

    def as_json(self) -> dict[str, Any]:
        cause = {"watermark": True} if self.cause is None else {"event_id": self.cause.event_id, "type": self.cause.type}
        return {
            "lead_id": self.lead_id,
            "old": {"stage": self.old_stage, "qualification": self.old_qualification},
            "new": {"stage": self.new_stage, "qualification": self.new_qualification},
            "cause": cause,
            "occurred_at": format_time(self.occurred_at),
            "events": self.events,
        }

    def encode(self) -> tuple[bytes, bytes]:
        """The record's key and value."""
        return self.lead_id.encode(), orjson.dumps(self.as_json())

    @classmethod
    def decode(cls, value: bytes) -> LeadChange:
        data = orjson.loads(value)
        cause = data["cause"]
        return cls(
            data["lead_id"],
            data["old"]["stage"],
            data["old"]["qualification"],
            data["new"]["stage"],
            data["new"]["qualification"],
            None if cause.get("watermark") else Cause(cause["event_id"], cause["type"]),
            parse_time(data["occurred_at"]),
            data["events"],
        )
