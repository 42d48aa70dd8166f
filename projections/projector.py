"""Folds journey records into lead states: the one place replay and live processing share."""

from __future__ import annotations

import gc
from typing import Iterable, Iterator

from xxhash import xxh3_64_intdigest

from projections.definitions import Definitions
from projections.lead import LeadState, LeadView, record, view
from projections.report import Aggregates, Changes, EventCounts, aggregate, build_comparison, build_report, lead_record
from schemas.decode import Event, Rejection, decode
from schemas.events import CURRENT_SCHEMA_VERSION, MAX_RECORD_BYTES
from schemas.fast import FAST_DECODER, FAST_ERRORS

try:  # the C fold (projections/_fold.c); without a C compiler at install, the Python one below
    from projections import _fold
except ImportError:  # pragma: no cover - depends on the install
    _fold = None

ACCELERATED = _fold is not None


class Projector:
    """Lead states of one set of leads (a whole log, or one partition of it)."""

    def __init__(self) -> None:
        self.leads: dict[str, LeadState] = {}
        self.counts = EventCounts()
        self.watermark: int | None = None

    def feed_all(self, records: Iterable[bytes], *, accelerated: bool = ACCELERATED) -> None:
        """Decode and apply records (invalid ones are counted): `apply` for a whole log.

        The replay hot path. The C fold decodes each record with the same
        msgspec decoder as `schemas.decode.decode`, hands it whatever that
        function would send down its slow path, and updates the lead states as
        `record` does; tests hold it to the Python fold below.
        """
        if not accelerated:
            self._feed_all_python(records)
            return
        assert _fold is not None, "the C fold is not built"
        paused = gc.isenabled()
        gc.disable()  # see _feed_all_python
        try:
            valid, duplicates, invalid, self.watermark = _fold.fold(
                self.leads, records, FAST_DECODER.decode, FAST_ERRORS, decode, Event, LeadState,
                xxh3_64_intdigest, MAX_RECORD_BYTES, CURRENT_SCHEMA_VERSION, self.watermark,
            )
        finally:
            if paused:
                gc.enable()
        self.counts.valid += valid
        self.counts.duplicates += duplicates
        self.counts.invalid += invalid

    def _feed_all_python(self, records: Iterable[bytes]) -> None:
        """The reference fold: names are bound locally, the counts are kept in
        locals, and the cyclic garbage collector is paused, because the fold
        makes no cycles and the collector would walk every lead state again
        and again as they pile up (about 10% of a replay).
        """
        leads, counts, find = self.leads, self.counts, self.leads.get
        valid = duplicates = invalid = 0
        mark = self.watermark
        paused = gc.isenabled()
        gc.disable()
        try:
            for raw in records:
                event = decode(raw)
                if type(event) is Rejection:
                    invalid += 1
                    continue
                state = find(event.lead_id)
                if state is None:
                    state = leads[event.lead_id] = LeadState()
                if record(state, event):
                    valid += 1
                    if mark is None or event.occurred_at > mark:
                        mark = event.occurred_at
                else:
                    duplicates += 1
        finally:
            if paused:
                gc.enable()
            counts.valid += valid
            counts.duplicates += duplicates
            counts.invalid += invalid
            self.watermark = mark

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
