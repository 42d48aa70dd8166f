"""Folds journey records into lead states: the one place replay and live processing share."""

from __future__ import annotations

import gc
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from sortedcontainers import SortedList
from xxhash import xxh3_64_intdigest

from projections.attribution import Attribution
from projections.definitions import Definitions
from projections.lead import LeadState, LeadView, Touch, record, view
from projections.report import Aggregates, Changes, EventCounts, aggregate, build_comparison, build_report, lead_record
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
    """Lead states of one set of leads (a whole log, or one partition of it)."""

    def __init__(self) -> None:
        self.leads: dict[str, LeadState] = {}
        self.counts = EventCounts()
        self.watermark: int | None = None

    def feed_all(self, records: Iterable[bytes]) -> None:
        """Decode and apply records (invalid ones are counted): `apply` for a whole log.

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
                event = decode(raw)
                if type(event) is Rejection:
                    counts.invalid += 1
                else:
                    apply(event)
        finally:
            if paused:
                gc.enable()

    def apply(self, event: Event) -> bool:
        state = self.leads.get(event.lead_id)
        if state is None:
            state = self.leads[event.lead_id] = LeadState()
        if not record(state, event):
            self.counts.duplicates += 1
            return False
        self.counts.valid += 1
        if self.watermark is None or event.occurred_at > self.watermark:
            self.watermark = event.occurred_at
        return True

    def views(self, defs: Definitions) -> Iterator[LeadView]:
        """Every lead's view, by lead id."""
        leads = self.leads
        for lead_id in sorted(leads):
            yield view(lead_id, leads[lead_id], defs)

    def lead_records(self, defs: Definitions) -> Iterator[dict[str, object]]:
        mark = self._mark()
        for lead in self.views(defs):
            yield lead_record(lead, defs, mark)

    def aggregate(self, defs: Definitions) -> Aggregates:
        return aggregate((view(lead_id, state, defs) for lead_id, state in self.leads.items()), defs)

    def changes(self, old: Definitions, new: Definitions) -> Changes:
        mark = self._mark()
        found = Changes()
        for lead_id, state in self.leads.items():
            found.add(view(lead_id, state, old), old, view(lead_id, state, new), new, mark)
        return found

    def report(self, defs: Definitions) -> dict[str, object]:
        return build_report(defs, self.counts, self.watermark, self.aggregate(defs))

    def comparison(self, baseline: Definitions, candidate: Definitions) -> dict[str, object]:
        return build_comparison(self.report(baseline), self.report(candidate), self.changes(baseline, candidate))

    def _mark(self) -> int:
        return self.watermark if self.watermark is not None else 0


class CompactProjector(Projector):
    """Replay's projector: Projector's fold and aggregates, with the lead states packed in C.

    A replay touches a random lead per event. A LeadState spreads over six
    Python objects, each a cache miss; the C table (projections/_fold.c) keeps
    a lead in one struct and decodes, checks and folds whole lists of records
    without Python code per event. Whatever its fast path does not accept goes
    to `schemas.decode.decode`, as in `Projector.feed_all`. Property tests hold
    both to the same answers. `leads` makes LeadState objects, once, for the
    outputs that need each lead (--leads-out, comparisons).
    """

    def __init__(self) -> None:
        assert _fold is not None, "the C lead table is not built"
        self._table = _fold.LeadTable()
        self._states: dict[str, LeadState] | None = None
        self.counts = EventCounts()
        self.watermark: int | None = None

    @property  # type: ignore[override]  # Projector's attribute, computed here from the C table on demand
    def leads(self) -> dict[str, LeadState]:
        if self._states is None:
            self._states = self._table.states(_lead_state)
        return self._states

    def feed_all(self, records: Iterable[bytes]) -> None:
        self._states = None
        valid, duplicates, invalid, self.watermark = self._table.fold(
            records, FAST_DECODER.decode, FAST_ERRORS, decode, Event, xxh3_64_intdigest,
            MAX_RECORD_BYTES, CURRENT_SCHEMA_VERSION, self.watermark,
        )
        self.counts.valid += valid
        self.counts.duplicates += duplicates
        self.counts.invalid += invalid

    def apply(self, event: Event) -> bool:
        raise TypeError("CompactProjector folds whole logs (feed_all); Projector applies one event at a time")

    def aggregate(self, defs: Definitions) -> Aggregates:
        if defs.mql_min_content_reads > _C_LIMIT or defs.sal_stale_after_micros > _C_LIMIT:
            return super().aggregate(defs)
        leads, pipeline, standing, pending, funnel, funnel_daily, cohorts_daily, groups, revenues = self._table.aggregate(
            defs.stage_of_type, defs.step_of_type, len(defs.stages), len(defs.steps),
            defs.mql_min_content_reads, defs.sal_stale_after_micros,
        )
        attribution = Attribution(len(defs.steps))
        for (touch, funnel_step, customer), count in groups.items():
            attribution.add_leads(touch, funnel_step, customer, count)
        for (touch, currency), (hundredths, count) in revenues.items():
            attribution.add_revenue(touch, currency, hundredths, count)
        return Aggregates(len(defs.steps), leads, pipeline, standing, SortedList(pending), funnel, funnel_daily, cohorts_daily, attribution)


def _lead_state(
    first_at: list[int | None], last_at: int, events: int, content_reads: int, contacts: int, seen: bytes,
    touch_at: int | None, touch_id: str | None, touch: Touch | None, revenue: dict[str, int] | None,
) -> LeadState:
    state = LeadState()
    state.first_at, state.last_at, state.events, state.content_reads, state.contacts = first_at, last_at, events, content_reads, contacts
    state.seen = array("q", seen)
    state.touch_at, state.touch_id, state.touch, state.revenue = touch_at, touch_id, touch, revenue
    return state


def replay_projector() -> Projector:
    """The fastest projector this install has for a whole log."""
    return CompactProjector() if ACCELERATED else Projector()


@dataclass(frozen=True)
class FoldSetup:
    """What the C batch fold (`_fold.fold_stored`) needs besides a partition's records: the decoders
    of replay's fold, the classes it makes, and the definitions its views are taken under."""

    upgrade: Callable[[bytes], bytes]  # any stored bytes to the current version, or CorruptState
    view_type: type  # LeadView
    cause_type: type  # the last event applied to a lead: (event_id, type, occurred_at)
    stage_of_type: tuple[int, ...]
    step_of_type: tuple[int, ...]
    stages: int
    steps: int
    mql_min_content_reads: int
    sal_stale_after_micros: int
    decode: Callable[[bytes], Any] = FAST_DECODER.decode
    expected: Any = FAST_ERRORS
    slow: Callable[[bytes], Any] = decode_record
    event_type: type = Event
    digest_of: Callable[[bytes], int] = xxh3_64_intdigest
    max_bytes: int = MAX_RECORD_BYTES
    version: int = CURRENT_SCHEMA_VERSION


def stored_fold(defs: Definitions, upgrade: Callable[[bytes], bytes], cause_type: type) -> Callable[..., Any] | None:
    """The C fold of one partition's batch over its stored leads, for these definitions: None where
    `_fold` is not built or the definitions hold integers too large for C.

    `fold(records, get, partition, through)` folds (offset, value) pairs in offset order over the
    leads `get(lead_id)` gives as stored bytes (projections.stored.StoredLead, which stays the
    reference, as `upgrade`: any stored bytes to the current version, or CorruptState). It gives
    (valid, duplicates, invalid, watermark, leads): `invalid` lists (offset, Rejection, value) of
    the records past `through` that do not decode; `leads`, per lead touched, in first-touched order,
    (lead id, stored bytes, view before or None, view after or None, cause or None), the cause a
    `cause_type(event_id, type, occurred_at)` of the last event applied to it.
    """
    if _fold is None or defs.mql_min_content_reads > _C_LIMIT or defs.sal_stale_after_micros > _C_LIMIT:
        return None
    setup = FoldSetup(
        upgrade, LeadView, cause_type, defs.stage_of_type, defs.step_of_type, len(defs.stages), len(defs.steps),
        defs.mql_min_content_reads, defs.sal_stale_after_micros,
    )
    return partial(_fold.fold_stored, setup)
