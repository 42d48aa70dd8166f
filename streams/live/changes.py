"""Lead changes on journey.lead-changes: one home for that wire format, both ways.

`{"lead_id", "old": {"stage", "qualification"}, "new": {...}, "cause": {"event_id", "type"},
{"watermark": true} or {"definitions": DIGEST}, "occurred_at", "events"}`, keyed by lead id.
Which changes there are is decided in the core (`projections.changes`).

Also the records of journey.lead-changes.definitions: per partition of journey.events,
the definitions journey.lead-changes last published under (SPEC §7's catch-up).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from projections import Definitions, DefinitionsError, format_time, lead_change_records
from projections.changes import Cause, LeadChange, NewDefinitions
from schemas import parse_time


def as_json(change: LeadChange) -> dict[str, Any]:
    cause: dict[str, Any]
    if change.cause is None:
        cause = {"watermark": True}
    elif isinstance(change.cause, NewDefinitions):
        cause = {"definitions": change.cause.digest}
    else:
        cause = {"event_id": change.cause.event_id, "type": change.cause.type}
    return {
        "lead_id": change.lead_id,
        "old": {"stage": change.old_stage, "qualification": change.old_qualification},
        "new": {"stage": change.new_stage, "qualification": change.new_qualification},
        "cause": cause,
        "occurred_at": format_time(change.occurred_at),
        "events": change.events,
    }


def encode(change: LeadChange) -> tuple[bytes, bytes]:
    """The record's key and value."""
    return change.lead_id.encode(), orjson.dumps(as_json(change))


def decode(value: bytes) -> LeadChange:
    data = orjson.loads(value)
    return LeadChange(
        data["lead_id"],
        data["old"]["stage"],
        data["old"]["qualification"],
        data["new"]["stage"],
        data["new"]["qualification"],
        _cause(data["cause"]),
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
    return [(*encode(change), []) for change in changes]


def _cause(data: dict[str, Any]) -> Cause | NewDefinitions | None:
    if data.get("watermark"):
        return None
    if "definitions" in data:
        return NewDefinitions(data["definitions"])
    return Cause(data["event_id"], data["type"])


# -- journey.lead-changes.definitions: what the topic last published under, per partition ----------


def published_under(partition: int, defs: Definitions) -> tuple[bytes, bytes]:
    """The record saying journey.lead-changes speaks for `partition` under `defs`: keyed by the
    partition number, holding the digest and the whole canonical document (to judge old views)."""
    return b"%d" % partition, b'{"digest":"%s","definitions":%s}' % (defs.digest.encode(), defs.canonical.encode())


def read_published_under(value: bytes) -> Definitions | None:
    """The definitions such a record names; None when it cannot be read back to the same digest."""
    try:
        data = orjson.loads(value)
        defs = Definitions.from_document(data["definitions"], "journey.lead-changes.definitions")
    except (orjson.JSONDecodeError, KeyError, TypeError, DefinitionsError):
        return None
    return defs if defs.digest == data.get("digest") else None
