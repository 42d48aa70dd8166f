"""Lead changes (journey.lead-changes): which leads get one, and what it says.

A lead change says a lead's stage and qualification before and after, and why:
an event, the watermark passing its stale time, or new definitions (SPEC §7).
Every decision of which changes to publish is taken here; the live worker
publishes what these functions give (its wire format is streams.live.changes).
"""

from __future__ import annotations

from typing import NamedTuple

from projections.definitions import Definitions
from projections.lead import QUALIFICATIONS, LeadView
from projections.report import stage_name
from schemas.events import EVENT_TYPES

Status = tuple[str | None, str]  # what a change says of a lead: its stage (None: none yet) and its qualification


class Cause(NamedTuple):
    """The event that moved the lead; see `LeadChange.cause`."""

    event_id: str
    type: str


class NewDefinitions(NamedTuple):
    """The lead's partition is projected under other definitions than journey.lead-changes last
    published under (SPEC §7's catch-up); `digest` names the new ones."""

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


class Applied(NamedTuple):
    """The last event a batch applied to a lead: what its change names as the cause."""

    event_id: str
    type: int  # index into EVENT_TYPES
    occurred_at: int


def status(lead: LeadView, defs: Definitions, watermark: int) -> Status:
    """What a lead change says of a lead: its stage and its qualification at the watermark."""
    return stage_name(lead, defs), QUALIFICATIONS[lead.qualification(watermark)]


def moved(old: LeadView | None, old_mark: int | None, new: LeadView, new_mark: int | None, defs: Definitions, cause: Applied) -> LeadChange | None:
    """The change of a lead that events moved from `old` (None: new to the table), judged at the
    watermark before them, to `new`, judged at the watermark after; None when it says the same."""
    before = None if old is None else status(old, defs, old_mark or 0)
    after = status(new, defs, new_mark or 0)
    if before == after:
        return None
    old_stage, old_level = (None, None) if before is None else before
    return LeadChange(new.lead_id, old_stage, old_level, *after, Cause(cause.event_id, EVENT_TYPES[cause.type]), cause.occurred_at, new.events)


def went_stale(lead: LeadView, defs: Definitions, stale_from: int) -> LeadChange:
    """An MQL that the watermark turned SAL (it passed `stale_from`)."""
    stage = stage_name(lead, defs)
    return LeadChange(lead.lead_id, stage, QUALIFICATIONS[lead.standing], stage, "sal", None, stale_from, lead.events)


def redefined(old: LeadView | None, old_defs: Definitions | None, new: LeadView, new_defs: Definitions, watermark: int) -> LeadChange | None:
    """SPEC §7's catch-up for one lead: its change from the definitions journey.lead-changes last
    published under (None: not known, so every lead gets a first change) to the new ones, both
    judged at the same watermark; None when both say the same."""
    after = status(new, new_defs, watermark)
    if old is None or old_defs is None:
        return LeadChange(new.lead_id, None, None, *after, NewDefinitions(new_defs.digest), watermark, new.events)
    before = status(old, old_defs, watermark)
    if before == after:
        return None
    return LeadChange(new.lead_id, *before, *after, NewDefinitions(new_defs.digest), watermark, new.events)
