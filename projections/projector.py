"""Folds journey records into lead states: the one place replay and live processing share."""

from __future__ import annotations

import gc
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from sortedcontainers import SortedList
from xxhash import xxh3_64_intdigest

from projections.attribution import Attribution
from projections.definitions import Definitions
from projections.identity import (
    ANON_PREFIX,
    IdentityCounts,
    LinkRecord,
    Persons,
    anon_key,
    anonymous_of,
    chosen,
    counts_of,
    made,
    person_order,
    persons,
    sorted_ids,
)
from projections.lead import LeadState, LeadView, Touch, record, view
from projections.report import Aggregates, Changes, EventCounts, Velocity, aggregate, build_comparison, build_report, lead_record
from projections.stored import StoredLead
from schemas.decode import Event, Rejection, decode, decoder
from schemas.events import CURRENT_SCHEMA_VERSION, MAX_RECORD_BYTES
from schemas.events import format_time as schemas_format_time
from schemas.fast import FAST_DECODER, FAST_ERRORS, FastEvent

try:  # the C lead table (projections/_fold.c); without a C compiler at install, replay uses Projector
    from projections import _fold
except ImportError:  # pragma: no cover - depends on the install
    _fold = None

ACCELERATED = _fold is not None
if _fold is not None:
    _fold.use_struct(FastEvent)  # read decoded fields from their slots, not by attribute lookup
# `schemas.decode.decode` with the C reader of occurred_at where it is built: the live worker's decoder.
decode_record = decode if _fold is None else decoder(_fold.parse_time)
# `schemas.events.format_time` in C where it is built (a tenth of the cost): for the worker's lead changes.
format_time: Callable[[int], str] = schemas_format_time if _fold is None else _fold.format_time
# Lead changes as records, in C where it is built: streams.live.changes.change_records' fast path.
lead_change_records: Callable[[Sequence[Any]], list[tuple[bytes, bytes, list[Any]]]] | None = None if _fold is None else _fold.lead_change_records
_C_LIMIT = 2**62  # definitions beyond this (absurd, but allowed) are aggregated in Python, without overflow


class Projector:
    """Owner states of one set of owners (a whole log, or one partition of it), and the persons they make.

    `leads` holds every owner's state: a lead's under its id, an anonymous id's under
    `anon_key(A)` (SPEC §9); `links` every link among the applied events
    (projections.identity.LinkRecord). Every output is per person."""

    def __init__(self) -> None:
        self.leads: dict[str, LeadState] = {}
        self.links: list[LinkRecord] = []
        self.counts = EventCounts()
        self.watermark: int | None = None
        self._persons: dict[tuple[int, tuple[str, ...]], Persons] = {}

    def feed_all(self, records: Iterable[bytes], slow: Callable[[bytes], Event | Rejection] = decode) -> None:
        """Decode and apply records (invalid ones are counted): `apply` for a whole log.

        `slow` is `schemas.decode.decode`, or a function that gives what it gives (replay --rejects
        keeps the rejections it makes): here it decodes every record; CompactProjector hands it
        what its fast path does not take, every invalid record among them.

        The cyclic garbage collector is paused meanwhile: the fold makes no
        cycles, and the collector would walk every lead state again and again
        as they pile up (about 10% of a replay). Replay itself folds in C
        where it is built (CompactProjector); this is the reference.
        """
        apply, counts = self.apply, self.counts
        paused = gc.isenabled()
        gc.disable()
        try:
            for raw in records:
                event = slow(raw)
                if type(event) is Rejection:
                    counts.invalid += 1
                else:
                    apply(event)
        finally:
            if paused:
                gc.enable()

    def apply(self, event: Event) -> bool:
        lead_id, anonymous_id = event.lead_id, event.anonymous_id
        key = lead_id if lead_id is not None else anon_key(anonymous_id)  # type: ignore[arg-type]
        state = self.leads.get(key)
        if state is None:
            state = self.leads[key] = LeadState()
        if not record(state, event):
            self.counts.duplicates += 1
            return False
        self._persons.clear()
        self.counts.valid += 1
        if self.watermark is None or event.occurred_at > self.watermark:
            self.watermark = event.occurred_at
        if lead_id is not None and anonymous_id is not None:
            self.links.append((anonymous_id, event.occurred_at, event.event_id, lead_id, event.type))
        return True

    def persons(self, defs: Definitions) -> Persons:
        """The persons under these definitions' identity options (SPEC §9)."""
        found = self._persons.get(defs.identity)
        if found is None:
            found = self._persons[defs.identity] = persons(self.leads, self.links, defs)
        return found

    # -- persons across replay processes (streams/replay/parallel.py) ----------------------

    def make_persons(self, defs: Definitions, joined: dict[str, list[str]], counts: IdentityCounts) -> None:
        """The persons of this share of the owners, the anonymous ids that join its leads decided
        over the whole log (`joined`, for this share's leads; their states handed over here)."""
        self._persons[defs.identity] = Persons(made(self.leads, joined), sorted_ids(joined), counts)

    def hand_over(self, anonymous_id: str) -> bytes | None:
        """An anonymous id that joined a lead of another share leaves this one: its stored state."""
        state = self.leads.pop(anon_key(anonymous_id), None)
        return None if state is None else StoredLead(0, -1, 0, state).encode()

    def adopt(self, anonymous_id: str, data: bytes) -> None:
        self.leads[anon_key(anonymous_id)] = StoredLead.decode(data).state

    def anonymous_owners(self) -> int:
        return sum(1 for key in self.leads if anonymous_of(key) is not None)

    def owns(self, anonymous_id: str) -> bool:
        return anon_key(anonymous_id) in self.leads

    def views(self, defs: Definitions) -> Iterator[LeadView]:
        """Every person's view: leads by lead id, then anonymous persons by anonymous id."""
        states = self.persons(defs).states
        for key in sorted(states, key=person_order):
            yield view(key, states[key], defs)

    def lead_records(self, defs: Definitions) -> Iterator[dict[str, object]]:
        mark, joined = self._mark(), self.persons(defs).anonymous_ids
        for lead in self.views(defs):
            yield lead_record(lead, defs, mark, joined.get(lead.lead_id, ()))

    def aggregate(self, defs: Definitions) -> Aggregates:
        return aggregate((view(key, state, defs) for key, state in self.persons(defs).states.items()), defs, self.watermark)

    def changes(self, old: Definitions, new: Definitions) -> Changes:
        """Which persons move between stages and levels from `old` to `new`; with other identity
        options on each side, the persons both sides have."""
        mark = self._mark()
        found = Changes()
        old_states, new_states = self.persons(old).states, self.persons(new).states
        for key, state in new_states.items():
            before = old_states.get(key)
            if before is not None:
                found.add(view(key, before, old), old, view(key, state, new), new, mark)
        return found

    def report(self, defs: Definitions) -> dict[str, object]:
        return build_report(defs, self.counts, self.watermark, self.aggregate(defs), self.identity_counts(defs))

    def identity_counts(self, defs: Definitions) -> IdentityCounts:
        return self.persons(defs).counts

    def comparison(self, baseline: Definitions, candidate: Definitions) -> dict[str, object]:
        return build_comparison(self.report(baseline), self.report(candidate), self.changes(baseline, candidate))

    def _mark(self) -> int:
        return self.watermark if self.watermark is not None else 0


class CompactProjector(Projector):
    """Replay's projector: Projector's fold and aggregates, with the owner states packed in C.

    A replay touches a random lead per event. A LeadState spreads over six
    Python objects, each a cache miss; the C table (projections/_fold.c) keeps
    an owner in one struct and decodes, checks and folds whole lists of records
    without Python code per event. Whatever its fast path does not accept goes
    to `schemas.decode.decode`, as in `Projector.feed_all`. Property tests hold
    both to the same answers. `leads` makes LeadState objects, once, for the
    outputs that need each person (--leads-out, comparisons).

    Persons (SPEC §9) are made in the table itself: each anonymous id that joins
    a lead is absorbed into it, once, under one set of identity options (a
    comparison across other identity options replays with `Projector`).
    """

    def __init__(self) -> None:
        assert _fold is not None, "the C lead table is not built"
        self._table = _fold.LeadTable()
        self._states: dict[str, LeadState] | None = None
        self._made: Persons | None = None
        self._made_under: tuple[int, tuple[str, ...]] | None = None
        self.links: list[LinkRecord] = []
        self.counts = EventCounts()
        self.watermark: int | None = None

    @property  # type: ignore[override]  # Projector's attribute, computed here from the C table on demand
    def leads(self) -> dict[str, LeadState]:
        if self._states is None:
            self._states = self._table.states(_lead_state)
        return self._states

    def feed_all(self, records: Iterable[bytes], slow: Callable[[bytes], Event | Rejection] | None = None) -> None:
        """`slow`: what decodes the records the fast path does not take (every invalid one among
        them), in place of `DECODING.slow`; replay --rejects passes one that keeps its rejections."""
        if self._made_under is not None:
            raise TypeError("CompactProjector folds a whole log before it makes persons")
        self._states = None
        decoding = DECODING if slow is None else replace(DECODING, slow=slow)
        valid, duplicates, invalid, self.watermark = self._table.fold(records, decoding, self.watermark, self.links)
        self.counts.valid += valid
        self.counts.duplicates += duplicates
        self.counts.invalid += invalid

    def apply(self, event: Event) -> bool:
        raise TypeError("CompactProjector folds whole logs (feed_all); Projector applies one event at a time")

    def persons(self, defs: Definitions) -> Persons:
        """The persons under these identity options, made in the table (once: see the class doc); their
        states as LeadState objects, made for the outputs that need each person."""
        made = self._made_in_table(defs)
        return Persons(self.leads, made.anonymous_ids, made.counts)

    def identity_counts(self, defs: Definitions) -> IdentityCounts:
        return self._made_in_table(defs).counts

    def _made_in_table(self, defs: Definitions) -> Persons:
        """The persons made in the table (without their states as Python objects: the aggregates are C's)."""
        if self._made_under is None:
            joined, over_limit = chosen(self.links, defs)
            linked = {link[0] for link in self.links}
            distinct = self.anonymous_owners() + self._table.missing(ANON_PREFIX, linked)
            self.make_persons(defs, joined, counts_of(joined, over_limit, distinct))
        elif self._made_under != defs.identity:
            raise ValueError("CompactProjector makes persons under one set of identity options; replay other ones with Projector")
        assert self._made is not None
        return self._made

    def make_persons(self, defs: Definitions, joined: dict[str, list[str]], counts: IdentityCounts) -> None:
        absorb = self._table.absorb
        for lead_id, anonymous_ids in joined.items():
            for anonymous_id in sorted(anonymous_ids) if len(anonymous_ids) > 1 else anonymous_ids:  # a first-touch tie goes to the least id
                absorb(lead_id, ANON_PREFIX + anonymous_id, anonymous_id)
        self._states = None
        self._made, self._made_under = Persons({}, sorted_ids(joined), counts), defs.identity

    def hand_over(self, anonymous_id: str) -> bytes | None:
        return self._table.hand_over(anon_key(anonymous_id))

    def adopt(self, anonymous_id: str, data: bytes) -> None:
        self._table.adopt(anon_key(anonymous_id), data)

    def anonymous_owners(self) -> int:
        return self._table.anonymous_owners(ANON_PREFIX)

    def owns(self, anonymous_id: str) -> bool:
        return anon_key(anonymous_id) in self._table

    def aggregate(self, defs: Definitions) -> Aggregates:
        self._made_in_table(defs)
        if defs.mql_min_content_reads > _C_LIMIT or defs.sal_stale_after_micros > _C_LIMIT:
            return aggregate((view(key, state, defs) for key, state in self.persons(defs).states.items()), defs, self.watermark)
        leads, pipeline, standing, pending, funnel, funnel_daily, cohorts_daily, groups, revenues, velocity = self._table.aggregate(
            defs.stage_of_type, defs.step_of_type, len(defs.stages), len(defs.steps),
            defs.mql_min_content_reads, defs.sal_stale_after_micros, defs.conversion_window_micros, self.watermark,
        )
        attribution = Attribution(len(defs.steps))
        for (touch, funnel_step, customer), count in groups.items():
            attribution.add_leads(touch, funnel_step, customer, count)
        for (touch, currency), (hundredths, count) in revenues.items():
            attribution.add_revenue(touch, currency, hundredths, count)
        entered, moved_on, move_days, window, convert_days, waiting_days = velocity
        speed = Velocity(entered, moved_on, move_days, window, convert_days, defs.conversion_window_micros, waiting_days)
        return Aggregates(len(defs.steps), leads, pipeline, standing, SortedList(pending), funnel, funnel_daily, cohorts_daily, attribution, speed)


def _lead_state(
    first_at: list[int | None], last_at: int, events: int, content_reads: int, contacts: int, seen: bytes,
    touch_at: int | None, touch_id: str | None, touch: Touch | None, touch_owner: str | None, revenue: dict[str, int] | None,
) -> LeadState:
    state = LeadState()
    state.first_at, state.last_at, state.events, state.content_reads, state.contacts = first_at, last_at, events, content_reads, contacts
    state.seen = array("q", seen)
    state.touch_at, state.touch_id, state.touch, state.touch_owner, state.revenue = touch_at, touch_id, touch, touch_owner, revenue
    return state


def replay_projector() -> Projector:
    """The fastest projector this install has for a whole log."""
    return CompactProjector() if ACCELERATED else Projector()


@dataclass(frozen=True)
class Decoding:
    """How the C folds decode records: replay's fold (`LeadTable.fold`) takes one of these."""

    decode: Callable[[bytes], Any] = FAST_DECODER.decode
    expected: Any = FAST_ERRORS
    slow: Callable[[bytes], Any] = decode_record
    event_type: type = Event
    digest_of: Callable[[bytes], int] = xxh3_64_intdigest
    max_bytes: int = MAX_RECORD_BYTES
    version: int = CURRENT_SCHEMA_VERSION
    anon_prefix: str = ANON_PREFIX  # an anonymous id's owner key is this + the id


DECODING = Decoding()


@dataclass(frozen=True)
class FoldSetup(Decoding):
    """What the C batch fold (`_fold.fold_stored`) needs besides a partition's records: replay's
    decoding, the classes it makes, and the definitions its views are taken under."""

    upgrade: Callable[[bytes], bytes] | None = None  # any stored bytes to the current version, or CorruptState
    view_type: type = LeadView
    cause_type: type = tuple  # the last event applied to a lead: (event_id, type, occurred_at)
    stage_of_type: tuple[int, ...] = ()
    step_of_type: tuple[int, ...] = ()
    stages: int = 0
    steps: int = 0
    mql_min_content_reads: int = 0
    sal_stale_after_micros: int = 0
    # SPEC §11: the shadow definitions, in the same shape (shadow_stages -1: no shadow)
    shadow_stage_of_type: tuple[int, ...] = ()
    shadow_step_of_type: tuple[int, ...] = ()
    shadow_stages: int = -1
    shadow_steps: int = 0
    shadow_mql_min_content_reads: int = 0
    shadow_sal_stale_after_micros: int = 0


def stored_fold(defs: Definitions, upgrade: Callable[[bytes], bytes], cause_type: type, shadow: Definitions | None = None) -> Callable[..., Any] | None:
    """The C fold of one partition's batch over its stored leads, for these definitions: None where
    `_fold` is not built or the definitions hold integers too large for C.

    `fold(records, get, partition, through)` folds (offset, value) pairs in offset order over the
    leads `get(lead_id)` gives as stored bytes (projections.stored.StoredLead, which stays the
    reference, as `upgrade`: any stored bytes to the current version, or CorruptState). It gives
    (valid, duplicates, invalid, watermark, leads): `invalid` lists (offset, Rejection, value) of
    the records past `through` that do not decode; `leads`, per lead touched, in first-touched order,
    (lead id, stored bytes, view before or None, view after or None, cause or None, identity section
    or None, shadow view before, shadow view after), the cause a `cause_type(event_id, type,
    occurred_at)` of the last event applied to it, the shadow views those under `shadow` (None without).
    """
    if _fold is None or any(d.mql_min_content_reads > _C_LIMIT or d.sal_stale_after_micros > _C_LIMIT for d in (defs, shadow) if d is not None):
        return None
    candidate = {} if shadow is None else {
        "shadow_stage_of_type": shadow.stage_of_type, "shadow_step_of_type": shadow.step_of_type, "shadow_stages": len(shadow.stages),
        "shadow_steps": len(shadow.steps), "shadow_mql_min_content_reads": shadow.mql_min_content_reads,
        "shadow_sal_stale_after_micros": shadow.sal_stale_after_micros,
    }
    setup = FoldSetup(
        upgrade=upgrade, cause_type=cause_type, stage_of_type=defs.stage_of_type, step_of_type=defs.step_of_type, stages=len(defs.stages),
        steps=len(defs.steps), mql_min_content_reads=defs.mql_min_content_reads, sal_stale_after_micros=defs.sal_stale_after_micros, **candidate,
    )
    return partial(_fold.fold_stored, setup)
