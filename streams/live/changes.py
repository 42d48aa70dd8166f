"""A lead change on journey.lead-changes: one home for that wire format, both ways.

`{"lead_id", "old": {"stage", "qualification"}, "new": {...}, "cause": {"event_id", "type"},
{"watermark": true} or {"definitions": DIGEST}, "occurred_at", "events"}`, keyed by lead id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson

from projections import Definitions, DefinitionsError, format_time, lead_change_records
from schemas import parse_time


class Cause(NamedTuple):
    """The event that moved the lead; see `LeadChange.cause`."""

    event_id: str
    type: str


class NewDefinitions(NamedTuple):
    """The worker projects the lead's partition under other definitions than the topic last spoke
    under (SPEC §7's catch-up); `digest` names the new ones."""

    digest: str


class LeadChange(NamedTuple):
    lead_id: str
    old_stage: str | None
    old_qualification: str | None  # None: the first change of a lead
    new_stage: str | None
    new_qualification: str
    cause: Cause | NewDefinitions | None  # None: the watermark moved past the lead's stale time
    occurred_at: int  # microseconds since the epoch; for new definitions, the watermark they were applied at
    events: int

    def as_json(self) -> dict[str, Any]:
        cause: dict[str, Any]
        if self.cause is None:
            cause = {"watermark": True}
        elif isinstance(self.cause, NewDefinitions):
            cause = {"definitions": self.cause.digest}
        else:
            cause = {"event_id": self.cause.event_id, "type": self.cause.type}
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
            _cause(cause),
            parse_time(data["occurred_at"]),
            data["events"],
        )


def change_records(changes: Sequence[LeadChange]) -> list[tuple[bytes, bytes, list[Any]]]:
    """Each change's record for journey.lead-changes: (key, value, no headers), as BatchProducer sends them.

    In C where it is built (projections/_fold.c): the bytes of `encode`, at
    about a tenth of its cost; a worker sends about one change every two
    events."""
    if lead_change_records is not None:
        return lead_change_records(changes)
    return [(*change.encode(), []) for change in changes]


def _cause(data: dict[str, Any]) -> Cause | NewDefinitions | None:
    if data.get("watermark"):
        return None
    if "definitions" in data:
        return NewDefinitions(data["definitions"])
    return Cause(data["event_id"], data["type"])


# -- journey.lead-changes.definitions: what the topic last spoke under, per partition ----------


def spoken_under(partition: int, defs: Definitions) -> tuple[bytes, bytes]:
    """The record saying journey.lead-changes speaks for `partition` under `defs`: keyed by the
    partition number, holding the digest and the whole canonical document (to judge old views)."""
    return b"%d" % partition, b'{"digest":"%s","definitions":%s}' % (defs.digest.encode(), defs.canonical.encode())


def read_spoken_under(value: bytes) -> Definitions | None:
    """The definitions such a record names; None when it cannot be read back to the same digest."""
    try:
        data = orjson.loads(value)
        defs = Definitions.from_document(data["definitions"], "journey.lead-changes.definitions")
    except (orjson.JSONDecodeError, KeyError, TypeError, DefinitionsError):
        return None
    return defs if defs.digest == data.get("digest") else None
