"""Across leads: the aggregates of SPEC §4, the replay report and the comparison of SPEC §5."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sortedcontainers import SortedList

from projections.attribution import Attribution
from projections.definitions import DAY_MICROS, NO_INDEX, Definitions
from projections.identity import NO_IDENTITY, IdentityCounts, anonymous_of
from projections.lead import CUSTOMER, MQL, QUALIFICATIONS, SAL, TOUCH_FIELDS, LeadView
from schemas.events import format_time

try:
    from projections import _fold as _C  # the velocity counts in C; None: the reference in Python
except ImportError:  # pragma: no cover - a checkout without the built extension
    _C = None
_C_LIMIT = 2**62

_EPOCH_DAY = date(1970, 1, 1)


@dataclass(slots=True)
class EventCounts:
    valid: int = 0
    invalid: int = 0
    duplicates: int = 0

    def merge(self, other: EventCounts) -> None:
        self.valid += other.valid
        self.invalid += other.invalid
        self.duplicates += other.duplicates

    def as_dict(self) -> dict[str, int]:
        return {"valid": self.valid, "invalid": self.invalid, "duplicates": self.duplicates}


@dataclass(slots=True)
class Aggregates:
    """Counts over a set of leads; aggregates of disjoint sets of leads merge by adding.

    Nothing here depends on the watermark: leads that will turn SAL once the
    watermark passes `stale_from` wait in `pending`, and `qualification_at`
    settles them. A live worker keeps one per partition and updates it by
    removing a lead's old view and adding its new one.
    """

    steps: int
    leads: int = 0
    pipeline: list[int] = field(default_factory=list)
    standing: list[int] = field(default_factory=list)  # per qualification level, pending leads excluded
    pending: SortedList = field(default_factory=SortedList)  # (stale_from, lead_id) of MQLs that may go stale
    funnel: list[int] = field(default_factory=list)
    funnel_daily: dict[int, list[int]] = field(default_factory=dict)
    cohorts_daily: dict[int, list[int]] = field(default_factory=dict)
    attribution: Attribution = field(default_factory=lambda: Attribution(0))
    velocity: Velocity = field(default_factory=lambda: Velocity.empty(0, 0, 0))

    @classmethod
    def empty(cls, defs: Definitions) -> Aggregates:
        n_steps = len(defs.steps)
        return cls(
            n_steps, 0, [0] * len(defs.stages), [0] * len(QUALIFICATIONS), SortedList(), [0] * n_steps, attribution=Attribution(n_steps),
            velocity=Velocity.empty(len(defs.stages), n_steps, defs.conversion_window_micros),
        )

    def add(self, lead: LeadView, sign: int = 1) -> None:
        """Count a lead in (sign 1) or, with its earlier view, out again (sign -1)."""
        self.leads += sign
        self._attribute(lead, sign)
        self._place(lead, sign)
        self._reach_times(lead.reach_at, sign)
        self.velocity.add(lead.entered, lead.reach_at, sign)

    def replace(self, old: LeadView | None, new: LeadView) -> None:
        """A lead changed: count its old view out and its new one in.

        Most events change only part of a view (another content read moves
        neither the first touch nor the funnel), so each part is counted out and
        in only when it differs: the same totals as `add(old, -1); add(new)`."""
        if old is None:
            self.add(new)
            return
        if old.touch != new.touch or old.funnel_step != new.funnel_step or old.standing != new.standing or old.revenue != new.revenue:
            self.attribution.move(
                (old.touch, old.funnel_step, old.standing == CUSTOMER, old.revenue), (new.touch, new.funnel_step, new.standing == CUSTOMER, new.revenue)
            )
        if old.stage != new.stage or old.standing != new.standing or old.stale_from != new.stale_from:
            self._place(old, -1)
            self._place(new, 1)
        if old.reach_at != new.reach_at:
            self._move_reach(old.reach_at, new.reach_at)
            self.velocity.convert(old.reach_at, -1)
            self.velocity.convert(new.reach_at, 1)
        if old.entered != new.entered:
            self.velocity.move(old.entered, -1)
            self.velocity.move(new.entered, 1)

    def _attribute(self, lead: LeadView, sign: int) -> None:
        self.attribution.add(lead.touch, lead.funnel_step, lead.standing == CUSTOMER, lead.revenue, sign)

    def _place(self, lead: LeadView, sign: int) -> None:
        if lead.stage != NO_INDEX:
            self.pipeline[lead.stage] += sign
        if lead.stale_from is None:
            self.standing[lead.standing] += sign
        elif sign > 0:
            self.pending.add((lead.stale_from, lead.lead_id))
        else:
            self.pending.remove((lead.stale_from, lead.lead_id))

    def _reach_times(self, reach_at: tuple[int, ...], sign: int) -> None:
        if not reach_at:
            return
        for step, at in enumerate(reach_at):
            self.funnel[step] += sign
            _count_day(self.funnel_daily, at // DAY_MICROS, range(step, step + 1), self.steps, sign)
        _count_day(self.cohorts_daily, reach_at[0] // DAY_MICROS, range(len(reach_at)), self.steps, sign)

    def _move_reach(self, old: tuple[int, ...], new: tuple[int, ...]) -> None:
        """`_reach_times(old, -1)` then `_reach_times(new, 1)`, touching only the steps and days that differ."""
        if not old or not new:
            self._reach_times(old, -1)
            self._reach_times(new, 1)
            return
        funnel, daily, width = self.funnel, self.funnel_daily, self.steps
        for step in range(max(len(old), len(new))):
            old_day = old[step] // DAY_MICROS if step < len(old) else None
            new_day = new[step] // DAY_MICROS if step < len(new) else None
            if old_day == new_day:
                continue
            if old_day is not None:
                funnel[step] -= 1
                _count_day(daily, old_day, range(step, step + 1), width, -1)
            if new_day is not None:
                funnel[step] += 1
                _count_day(daily, new_day, range(step, step + 1), width, 1)
        old_cohort, new_cohort = old[0] // DAY_MICROS, new[0] // DAY_MICROS
        if old_cohort != new_cohort:
            _count_day(self.cohorts_daily, old_cohort, range(len(old)), width, -1)
            _count_day(self.cohorts_daily, new_cohort, range(len(new)), width, 1)
        elif len(old) < len(new):
            _count_day(self.cohorts_daily, new_cohort, range(len(old), len(new)), width, 1)
        elif len(new) < len(old):
            _count_day(self.cohorts_daily, new_cohort, range(len(new), len(old)), width, -1)

    def qualification_at(self, watermark: int | None) -> list[int]:
        counts = list(self.standing)
        stale = 0 if watermark is None else self.pending.bisect_left((watermark + 1, ""))
        counts[MQL] += len(self.pending) - stale
        counts[SAL] += stale
        return counts

    def going_stale(self, after: int | None, upto: int) -> list[tuple[int, str]]:
        """(stale_from, lead_id) of the leads that turn SAL as the watermark moves from `after` to `upto`."""
        low = (after + 1, "") if after is not None else None
        return list(self.pending.irange(low, (upto + 1, ""), inclusive=(True, False)))

    def merge(self, other: Aggregates, pending: bool = True) -> None:
        """Add another's counts. Without `pending`, its MQLs that may go stale are left out
        (summing `qualification_at` per part is cheaper than merging them)."""
        self.leads += other.leads
        _add_into(self.pipeline, other.pipeline)
        _add_into(self.standing, other.standing)
        if pending:
            self.pending.update(other.pending)
        _add_into(self.funnel, other.funnel)
        self.attribution.merge(other.attribution)
        self.velocity.merge(other.velocity)
        for mine, theirs in ((self.funnel_daily, other.funnel_daily), (self.cohorts_daily, other.cohorts_daily)):
            for day, row in theirs.items():
                if day in mine:
                    _add_into(mine[day], row)
                else:
                    mine[day] = list(row)


@dataclass(slots=True)
class Velocity:
    """Pipeline velocity and conversion windows (SPEC §10), the parts that do not depend on the
    watermark: per stage, the persons that entered it, those that moved on and their whole days in
    it; per funnel step, the persons that converted within the window, and their whole days to
    convert. Histograms of whole days (day -> persons), so shares of disjoint persons add exactly.
    `waiting_days` (per stage, days waiting at a watermark) is settled by whoever knows the watermark."""

    entered: list[int]
    moved_on: list[int]
    move_days: list[dict[int, int]]
    window: list[int]
    convert_days: list[dict[int, int]]
    window_micros: int
    waiting_days: list[dict[int, int]] = field(default_factory=list)

    @classmethod
    def empty(cls, stages: int, steps: int, window_micros: int) -> Velocity:
        return cls([0] * stages, [0] * stages, [{} for _ in range(stages)], [0] * steps, [{} for _ in range(steps)], window_micros, [{} for _ in range(stages)])

    def add(self, entered: tuple[int | None, ...], reach_at: tuple[int, ...], sign: int) -> None:
        self.move(entered, sign)
        self.convert(reach_at, sign)

    def move(self, entered: tuple[int | None, ...], sign: int) -> None:
        """A person's stages: entered, and moved on (a later stage entered) after whole days (0 when the later came first).
        In C where `projections._fold` is built (a live worker runs it twice for every person a batch moves
        between stages): `move_reference` is the reference it is held to."""
        if _C is not None:
            _C.velocity_move(entered, sign, self.entered, self.moved_on, self.move_days)
            return
        self.move_reference(entered, sign)

    def move_reference(self, entered: tuple[int | None, ...], sign: int) -> None:
        later: int | None = None
        counted, moved_on, histograms = self.entered, self.moved_on, self.move_days
        for stage in range(len(entered) - 1, -1, -1):
            at = entered[stage]
            if at is None:
                continue
            counted[stage] += sign
            if later is not None:
                moved_on[stage] += sign
                day = (later - at) // DAY_MICROS if later > at else 0
                histogram = histograms[stage]
                now = histogram.get(day, 0) + sign
                if now:
                    histogram[day] = now
                else:
                    del histogram[day]
                if later < at:
                    at = later
            later = at

    def convert(self, reach_at: tuple[int, ...], sign: int) -> None:
        """A person's funnel steps: step 0 reached, and each later step within the window, and its whole days from step 0.
        In C where `projections._fold` is built: `convert_reference` is the reference."""
        if _C is not None and self.window_micros < _C_LIMIT:  # a window past int64 (absurd, but allowed): in Python
            _C.velocity_convert(reach_at, sign, self.window, self.window_micros, self.convert_days)
            return
        self.convert_reference(reach_at, sign)

    def convert_reference(self, reach_at: tuple[int, ...], sign: int) -> None:
        if not reach_at:
            return
        first, window, limit, histograms = reach_at[0], self.window, self.window_micros, self.convert_days
        window[0] += sign
        for step in range(1, len(reach_at)):
            delta = reach_at[step] - first
            if delta <= limit:
                window[step] += sign
            day = delta // DAY_MICROS
            histogram = histograms[step]
            now = histogram.get(day, 0) + sign
            if now:
                histogram[day] = now
            else:
                del histogram[day]

    def merge(self, other: Velocity) -> None:
        _add_into(self.entered, other.entered)
        _add_into(self.moved_on, other.moved_on)
        _add_into(self.window, other.window)
        for mine, theirs in (*zip(self.move_days, other.move_days, strict=True), *zip(self.convert_days, other.convert_days, strict=True)):
            for day, count in theirs.items():
                _bump(mine, day, count)
        for mine, theirs in zip(self.waiting_days, other.waiting_days, strict=True):
            for day, count in theirs.items():
                _bump(mine, day, count)

    def settle(self, stages: list[Iterable[int]], watermark: int | None) -> None:
        """`waiting_days` at the watermark, from when each waiting person entered its stage (per stage)."""
        self.waiting_days = [{} for _ in self.entered]
        if watermark is None:
            return
        for stage, entered in enumerate(stages):
            for at in entered:
                _bump(self.waiting_days[stage], (watermark - at) // DAY_MICROS, 1)


def _bump(histogram: dict[int, int], day: int, count: int) -> None:
    now = histogram.get(day, 0) + count
    if now:
        histogram[day] = now
    else:
        del histogram[day]


def nearest_rank(histogram: dict[int, int], q: float) -> int | None:
    """The least day whose cumulative count reaches ceil(q × total) (SPEC §10); None when empty."""
    total = sum(histogram.values())
    if not total:
        return None
    rank, seen = math.ceil(q * total), 0
    for day in sorted(histogram):
        seen += histogram[day]
        if seen >= rank:
            return day
    return max(histogram)


def velocity_report(defs: Definitions, totals: Aggregates) -> dict[str, Any]:
    """The report's `velocity`, `funnel_window` and `time_to_convert` sections (SPEC §10)."""
    v = totals.velocity
    velocity = {
        stage: {
            "entered": v.entered[i], "moved_on": v.moved_on[i], "days_to_move_on": _days(v.move_days[i]),
            "median_days": nearest_rank(v.move_days[i], 0.5), "p90_days": nearest_rank(v.move_days[i], 0.9),
            "waiting": v.entered[i] - v.moved_on[i], "waiting_days": _days(v.waiting_days[i]),
        }
        for i, stage in enumerate(defs.stages)
    }
    steps = defs.steps
    window = {"days": defs.conversion_window_micros // DAY_MICROS, "steps": dict(zip(steps, v.window, strict=True))}
    convert = {
        step: {"days": _days(v.convert_days[i]), "median_days": nearest_rank(v.convert_days[i], 0.5), "p90_days": nearest_rank(v.convert_days[i], 0.9)}
        for i, step in enumerate(steps) if i > 0
    }
    return {"velocity": velocity, "funnel_window": window, "time_to_convert": convert}


def _days(histogram: dict[int, int]) -> dict[str, int]:
    return {str(day): histogram[day] for day in sorted(histogram)}


def _count_day(rows: dict[int, list[int]], day: int, steps: range, width: int, sign: int) -> None:
    row = rows.get(day)
    if row is None:
        row = rows[day] = [0] * width
    for step in steps:
        row[step] += sign
    if sign < 0 and not any(row):
        del rows[day]  # days with no reach are left out of the report


def aggregate(leads: Iterable[LeadView], defs: Definitions, watermark: int | None = None) -> Aggregates:
    """The aggregates of these persons; velocity's days waiting settled at `watermark`."""
    totals = Aggregates.empty(defs)
    waiting: list[list[int]] = [[] for _ in defs.stages]
    for lead in leads:
        totals.add(lead)
        if lead.stage != NO_INDEX and lead.stage_entered_at is not None:
            waiting[lead.stage].append(lead.stage_entered_at)
    totals.velocity.settle(waiting, watermark)
    return totals


def build_report(defs: Definitions, counts: EventCounts, watermark: int | None, totals: Aggregates, identity: IdentityCounts = NO_IDENTITY) -> dict[str, Any]:
    return {
        "events": counts.as_dict(),
        "watermark": None if watermark is None else format_time(watermark),
        "leads": totals.leads,
        "pipeline": dict(zip(defs.stages, totals.pipeline, strict=True)),
        "qualification": dict(zip(QUALIFICATIONS, totals.qualification_at(watermark), strict=True)),
        "funnel": dict(zip(defs.steps, totals.funnel, strict=True)),
        "funnel_daily": _by_day(totals.funnel_daily, defs.steps),
        "cohorts_daily": _by_day(totals.cohorts_daily, defs.steps),
        "attribution": totals.attribution.report(defs.steps),
        "identity": identity.as_dict(),
        **velocity_report(defs, totals),
    }


def lead_record(lead: LeadView, defs: Definitions, watermark: int, anonymous_ids: Iterable[str] = ()) -> dict[str, Any]:
    """One line of `--leads-out`, and the body of GET /api/leads/{lead_id}: a person (SPEC §9),
    a lead with the anonymous ids that joined it (sorted), or an anonymous person."""
    anonymous_id = anonymous_of(lead.lead_id)
    return {
        "lead_id": lead.lead_id if anonymous_id is None else None,
        "anonymous_ids": sorted(anonymous_ids) if anonymous_id is None else [anonymous_id],
        "stage": stage_name(lead, defs),
        "stage_entered_at": None if lead.stage_entered_at is None else format_time(lead.stage_entered_at),
        "stages_entered_at": {name: format_time(at) for name, at in zip(defs.stages, lead.entered, strict=True) if at is not None},
        "qualification": QUALIFICATIONS[lead.qualification(watermark)],
        "funnel_step": None if lead.funnel_step == NO_INDEX else defs.steps[lead.funnel_step],
        "events": lead.events,
        "last_event_at": format_time(lead.last_event_at),
        "first_touch": None if lead.touch is None else dict(zip(TOUCH_FIELDS, lead.touch, strict=True)),
        "revenue": {currency: hundredths / 100 for currency, hundredths in lead.revenue},
    }


def stage_name(lead: LeadView, defs: Definitions) -> str | None:
    return None if lead.stage == NO_INDEX else defs.stages[lead.stage]


class Changes:
    """Which leads move between stages and qualification levels from one definitions to another."""

    def __init__(self) -> None:
        self.stages: Counter[str] = Counter()
        self.qualifications: Counter[str] = Counter()

    def add(self, old: LeadView, old_defs: Definitions, new: LeadView, new_defs: Definitions, watermark: int) -> None:
        old_stage = stage_name(old, old_defs) or "none"
        new_stage = stage_name(new, new_defs) or "none"
        if old_stage != new_stage:
            self.stages[f"{old_stage}->{new_stage}"] += 1
        old_level, new_level = old.qualification(watermark), new.qualification(watermark)
        if old_level != new_level:
            self.qualifications[f"{QUALIFICATIONS[old_level]}->{QUALIFICATIONS[new_level]}"] += 1

    def merge(self, other: Changes) -> None:
        self.stages.update(other.stages)
        self.qualifications.update(other.qualifications)


def build_comparison(baseline: dict[str, Any], candidate: dict[str, Any], changes: Changes) -> dict[str, Any]:
    return {
        "baseline": baseline,
        "candidate": candidate,
        "stage_changes": dict(sorted(changes.stages.items())),
        "qualification_changes": dict(sorted(changes.qualifications.items())),
    }


def day_name(day: int) -> str:
    return (_EPOCH_DAY + timedelta(days=day)).isoformat()


def _by_day(rows: dict[int, list[int]], steps: tuple[str, ...]) -> dict[str, dict[str, int]]:
    return {day_name(day): dict(zip(steps, rows[day], strict=True)) for day in sorted(rows)}


def _add_into(target: list[int], source: list[int]) -> None:
    for i, value in enumerate(source):
        target[i] += value
