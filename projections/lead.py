"""One lead: the state folded from its events, and what the definitions make of it (SPEC §4).

The state keeps, per event type, the earliest time it occurred, plus the few
counts and flags qualification needs. Every field is a min, max, count of
distinct events or a flag, so any order of the same events gives the same
state, and because it holds no stage or step it serves any definitions: replay
can compare two definitions over one fold.
"""

from __future__ import annotations

from array import array
from typing import NamedTuple

from xxhash import xxh3_64_intdigest

from projections.definitions import NO_INDEX, Definitions
from schemas.decode import Event
from schemas.events import CONTACT_MADE, CONTENT_READ, EVENT_TYPES, NEGOTIATION, PURCHASE, UPSELL

QUALIFICATIONS: tuple[str, ...] = ("lead", "mql", "sal", "sql", "customer")
LEAD, MQL, SAL, SQL, CUSTOMER = range(len(QUALIFICATIONS))

INBOUND_CONTACT = 1
OUTBOUND_CONTACT = 2
_NTYPES = len(EVENT_TYPES)
_SIGNED = 1 << 63  # array("q") holds signed 64-bit integers


Touch = tuple[str | None, str | None, str | None]  # (source, channel, campaign) of one event
NO_CURRENCY = "(none)"  # SPEC §4: the currency of an amount without one
# A person's revenue in one currency is kept in int64 hundredths (the stored lead, the C fold): amounts are
# never negative, so a sum passes this bound whatever the order of events and merges (docs/spec-notes.md).
MAX_HUNDREDTHS = (1 << 63) - 1
NO_LAST_AT = -(1 << 63)  # a state's last_at before any event (the C fold's NONE_AT)
REVENUE_PAST_LIMIT = "a person's revenue in one currency would pass 92233720368547758.07, the most journey keeps"
TOUCH_FIELDS = ("source", "channel", "campaign")


class LeadState:
    """The facts of one owner's events (a lead id, or an anonymous id: SPEC §9), or of a person's:
    the merge of its owners' states (`merge`)."""

    __slots__ = ("contacts", "content_reads", "events", "first_at", "last_at", "revenue", "seen", "touch", "touch_at", "touch_id", "touch_owner")

    def __init__(self) -> None:
        self.first_at: list[int | None] = [None] * _NTYPES
        self.last_at = NO_LAST_AT  # below any occurred_at: events may come from before 1970
        self.events = 0
        self.content_reads = 0
        self.contacts = 0  # INBOUND_CONTACT | OUTBOUND_CONTACT flags
        # 64-bit digests of the event ids applied; a set would cost 200+ bytes per lead.
        self.seen = array("q")
        # The first touch: the touch with the least (occurred_at, event_id); None until one.
        self.touch_at: int | None = None
        self.touch_id: str | None = None
        self.touch: Touch | None = None
        # In a person's state, the anonymous id whose event the first touch is; None: the lead's own
        self.touch_owner: str | None = None
        # Per currency, the exact sum of purchase and upsell amounts in hundredths; None until one.
        self.revenue: dict[str, int] | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LeadState):
            return NotImplemented
        return self._key() == other._key()

    def _key(self) -> tuple[object, ...]:
        touch = (self.touch_at, self.touch_id, self.touch, self.touch_owner)
        return (self.first_at, self.last_at, self.events, self.content_reads, self.contacts, sorted(self.seen), touch, self.revenue or {})

    def __repr__(self) -> str:
        return f"LeadState(events={self.events}, first_at={self.first_at}, last_at={self.last_at})"


def event_digest(event_id: str) -> int:
    """A stable 64-bit digest of an event id (the same in every process and on every machine)."""
    return xxh3_64_intdigest(event_id.encode()) - _SIGNED


def record(state: LeadState, event: Event) -> bool:
    """Apply one event; False (and no change) when the lead already has this event id."""
    digest = event_digest(event.event_id)
    if digest in state.seen:
        return False
    state.seen.append(digest)
    kind = event.type
    at = event.occurred_at
    first = state.first_at[kind]
    if first is None or at < first:
        state.first_at[kind] = at
    if at > state.last_at:
        state.last_at = at
    state.events += 1
    if kind == CONTENT_READ:
        state.content_reads += 1
    elif kind == CONTACT_MADE and event.inbound is not None:
        state.contacts |= INBOUND_CONTACT if event.inbound else OUTBOUND_CONTACT
    if event.source is not None or event.channel is not None or event.campaign is not None:
        touch_at, touch_id = state.touch_at, state.touch_id
        if touch_at is None or touch_id is None or at < touch_at or (at == touch_at and event.event_id < touch_id):
            state.touch_at, state.touch_id, state.touch = at, event.event_id, (event.source, event.channel, event.campaign)
    if event.amount is not None and kind in (PURCHASE, UPSELL):
        currency = NO_CURRENCY if event.currency is None else event.currency
        revenue = state.revenue
        if revenue is None:
            revenue = state.revenue = {}
        total = revenue.get(currency, 0) + hundredths(event.amount)
        if total > MAX_HUNDREDTHS:
            raise OverflowError(REVENUE_PAST_LIMIT)
        revenue[currency] = total
    return True


def merge(into: LeadState, other: LeadState, owner: str) -> None:
    """Add the facts of anonymous id `owner`'s state to a person's state (SPEC §9): each field is a
    minimum, maximum, sum or flag, so the order of merges does not matter, except the first touch's
    tie on (occurred_at, event_id), which goes to the lead's own touch, then to the least anonymous
    id. Seen event ids stay per owner (duplicates are per owner) and are not merged."""
    first = into.first_at
    for kind, at in enumerate(other.first_at):
        if at is not None and (first[kind] is None or at < first[kind]):  # type: ignore[operator]
            first[kind] = at
    if other.last_at > into.last_at:
        into.last_at = other.last_at
    into.events += other.events
    into.content_reads += other.content_reads
    into.contacts |= other.contacts
    if other.touch_at is not None and _touches_first(other.touch_at, other.touch_id, owner, into):
        into.touch_at, into.touch_id, into.touch, into.touch_owner = other.touch_at, other.touch_id, other.touch, owner
    if other.revenue:
        revenue = into.revenue if into.revenue is not None else {}
        for currency, amount in other.revenue.items():
            total = revenue.get(currency, 0) + amount
            if total > MAX_HUNDREDTHS:
                raise OverflowError(REVENUE_PAST_LIMIT)
            revenue[currency] = total
        into.revenue = revenue


def _touches_first(at: int, event_id: str | None, owner: str, person: LeadState) -> bool:
    """Whether anonymous id `owner`'s touch comes before the person's first touch so far."""
    if person.touch_at is None or person.touch_id is None or event_id is None:
        return person.touch_at is None
    if (at, event_id) != (person.touch_at, person.touch_id):
        return (at, event_id) < (person.touch_at, person.touch_id)
    return person.touch_owner is not None and owner < person.touch_owner


def hundredths(amount: float) -> int:
    """SPEC §4: round-half-even(amount × 100, computed as an IEEE-754 double). Python's round of a
    float is exactly that: 2.675 × 100 is the double 267.5, so 268; 0.005 × 100 is 0.5, so 0."""
    return round(float(amount) * 100)


class LeadView(NamedTuple):
    """What the definitions make of a lead, apart from the watermark.

    Only one rule depends on the watermark (an MQL going stale becomes SAL), so
    the view carries `standing`, the level before that rule, and `stale_from`,
    the watermark at which the rule turns it into SAL (None when it cannot).
    """

    lead_id: str
    stage: int  # index into Definitions.stages, or NO_INDEX
    stage_entered_at: int | None
    funnel_step: int  # index into Definitions.steps, or NO_INDEX
    reach_at: tuple[int, ...]  # reach time of each step up to funnel_step
    standing: int  # index into QUALIFICATIONS, before staleness
    stale_from: int | None
    events: int
    last_event_at: int
    touch: Touch | None = None  # the first touch
    revenue: tuple[tuple[str, int], ...] = ()  # (currency, hundredths), by currency
    entered: tuple[int | None, ...] = ()  # per stage, when the lead entered it (SPEC §10); None: not entered

    def qualification(self, watermark: int) -> int:
        stale_from = self.stale_from
        return SAL if stale_from is not None and watermark >= stale_from else self.standing


def view(lead_id: str, state: LeadState, defs: Definitions) -> LeadView:
    """One pass over the event types (this runs once per lead in every replay)."""
    stage_of_type, step_of_type = defs.stage_of_type, defs.step_of_type
    stage, stage_entered_at = NO_INDEX, None
    funnel_step = NO_INDEX
    step_first: list[int | None] = [None] * len(defs.steps)  # per step, the earliest event of that step
    entered: list[int | None] = [None] * len(defs.stages)  # per stage, its earliest event
    for kind, at in enumerate(state.first_at):
        if at is None:
            continue
        group = stage_of_type[kind]
        if group != NO_INDEX:
            earliest = entered[group]
            if earliest is None or at < earliest:
                entered[group] = at
            if group > stage:
                stage = group
        step = step_of_type[kind]
        if step != NO_INDEX:
            if step > funnel_step:
                funnel_step = step
            earliest = step_first[step]
            if earliest is None or at < earliest:
                step_first[step] = at
    if stage != NO_INDEX:
        stage_entered_at = entered[stage]
    reach_at = _reach_times(step_first, funnel_step)
    standing = _standing(state, defs.mql_min_content_reads)
    stale_from = None
    if standing == MQL and stage_entered_at is not None:
        stale_from = stage_entered_at + defs.sal_stale_after_micros
    revenue = () if state.revenue is None else tuple(sorted(state.revenue.items()))
    return _new_view(LeadView, (lead_id, stage, stage_entered_at, funnel_step, reach_at, standing, stale_from, state.events, state.last_at, state.touch, revenue, tuple(entered)))


_new_view = tuple.__new__  # LeadView(...) without the Python-level __new__ of a NamedTuple: view runs per touched lead


def _reach_times(step_first: list[int | None], funnel_step: int) -> tuple[int, ...]:
    """A step is reached at the earliest event of it or of any later step (SPEC §4)."""
    if funnel_step == NO_INDEX:
        return ()
    reach: list[int] = []
    earliest: int | None = None
    for step in range(funnel_step, -1, -1):
        at = step_first[step]
        if at is not None and (earliest is None or at < earliest):
            earliest = at
        reach.append(earliest)  # type: ignore[arg-type] - the funnel step itself has an event
    reach.reverse()
    return tuple(reach)


def _standing(state: LeadState, mql_min_content_reads: int) -> int:
    """SPEC §4 qualification rules, except 'stale in its stage' (see LeadView.qualification)."""
    first_at = state.first_at
    if first_at[PURCHASE] is not None or first_at[UPSELL] is not None:
        return CUSTOMER
    if first_at[NEGOTIATION] is not None:
        return SQL
    if not (state.content_reads >= mql_min_content_reads or state.contacts & INBOUND_CONTACT):
        return LEAD
    return SAL if state.contacts & OUTBOUND_CONTACT else MQL
