"""What the HTTP API answers of one person, from the stored bytes a worker holds (SPEC §5, §9)."""

from __future__ import annotations

from typing import Any

from projections.definitions import Definitions
from projections.identity import Link, anon_key
from projections.lead import view
from projections.linking import kept_ids, person_view
from projections.report import lead_record
from projections.stored import Held, StoredLead, anon_section


def lead(defs: Definitions, lead_id: str, data: bytes, watermark: int) -> dict[str, Any]:
    """A lead's person, as `--leads-out` writes it (GET /api/leads/{lead_id})."""
    return lead_record(person_view(lead_id, data, defs), defs, watermark, kept_ids(data, lead_id))


def anonymous(defs: Definitions, anonymous_id: str, data: bytes, watermark: int) -> tuple[Link | None, dict[str, Any] | None]:
    """What an anonymous id's own partition knows of its person (GET /api/anonymous/{A}): its
    winning link, when a lead claimed it (its person is that lead's, or itself over the limit:
    the lead's partition knows), and the id alone as a person, when it owns events (its person
    while no lead claims it, or until the lead has heard of it)."""
    stored = StoredLead.decode(data)
    own = lead_record(view(anon_key(anonymous_id), stored.state, defs), defs, watermark) if stored.state.events else None
    return anon_section(stored.identity).winner, own


def held(defs: Definitions, lead_id: str, anonymous_id: str, lead_data: bytes | None, held_data: bytes | None, watermark: int) -> dict[str, Any] | None:
    """The person an anonymous id is part of, as its winning lead's partition knows it: the lead's
    when the lead keeps it, itself when it is over the limit; None when this lead has not heard
    that the id belongs to it (the message is on its way)."""
    if lead_data is not None and anonymous_id in kept_ids(lead_data, lead_id):
        return lead(defs, lead_id, lead_data, watermark)
    entry = None if held_data is None else Held.decode(held_data)
    if entry is None or entry.link.lead_id != lead_id or not entry.facts.events:
        return None
    return lead_record(view(anon_key(anonymous_id), entry.facts, defs), defs, watermark)
