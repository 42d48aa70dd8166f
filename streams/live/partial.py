"""A worker's share of the report (`/internal/partial`): one home for that wire format, both ways.

Every worker answers for the partitions it owns, with qualification already
settled at the cluster's watermark; `merge` adds the shares into the report of
SPEC §5. Aggregates of disjoint partitions merge by adding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from projections import QUALIFICATIONS, Aggregates, Definitions, EventCounts, build_report
from projections.attribution import Attribution
from projections.identity import NO_IDENTITY, IdentityCounts
from projections.live import LiveProjection
from projections.report import Velocity


@dataclass
class Partial:
    partitions: list[int]
    counts: EventCounts
    watermark: int | None  # the latest event time in these partitions
    aggregates: Aggregates  # `pending` is not sent: qualification below is settled already
    qualification: list[int]  # per level, at the cluster's watermark
    identity: IdentityCounts = NO_IDENTITY

    @classmethod
    def of(cls, projection: LiveProjection, watermark: int | None) -> Partial:
        """A worker's share of the report, qualification settled at the cluster's watermark."""
        totals, counts, identity = projection.totals()
        totals.velocity.waiting_days = projection.waiting_days_at(watermark)
        return cls(sorted(projection.partitions), counts, projection.local_watermark(), totals, projection.qualification_at(watermark), identity)

    def encode(self) -> dict[str, Any]:
        totals = self.aggregates
        return {
            "partitions": self.partitions,
            "counts": self.counts.as_dict(),
            "watermark": self.watermark,
            "leads": totals.leads,
            "pipeline": totals.pipeline,
            "qualification": self.qualification,
            "funnel": totals.funnel,
            "funnel_daily": {str(day): row for day, row in totals.funnel_daily.items()},
            "cohorts_daily": {str(day): row for day, row in totals.cohorts_daily.items()},
            "attribution": totals.attribution.encode(),
            "identity": list(self.identity),
            "velocity": _velocity_wire(totals.velocity),
        }

    @classmethod
    def decode(cls, defs: Definitions, data: dict[str, Any]) -> Partial:
        totals = Aggregates.empty(defs)
        totals.leads, totals.pipeline, totals.funnel = data["leads"], data["pipeline"], data["funnel"]
        totals.funnel_daily = {int(day): row for day, row in data["funnel_daily"].items()}
        totals.cohorts_daily = {int(day): row for day, row in data["cohorts_daily"].items()}
        totals.attribution = Attribution.decode(len(defs.steps), data["attribution"])
        totals.velocity = _velocity_read(data["velocity"], defs.conversion_window_micros)
        identity = IdentityCounts(*data["identity"])
        return cls(data["partitions"], EventCounts(**data["counts"]), data["watermark"], totals, data["qualification"], identity)


def _velocity_wire(velocity: Velocity) -> dict[str, Any]:
    def days(histograms: list[dict[int, int]]) -> list[dict[str, int]]:
        return [{str(day): count for day, count in histogram.items()} for histogram in histograms]

    return {
        "entered": velocity.entered, "moved_on": velocity.moved_on, "move_days": days(velocity.move_days), "window": velocity.window,
        "convert_days": days(velocity.convert_days), "waiting_days": days(velocity.waiting_days),
    }


def _velocity_read(data: dict[str, Any], window_micros: int) -> Velocity:
    def days(histograms: list[dict[str, int]]) -> list[dict[int, int]]:
        return [{int(day): count for day, count in histogram.items()} for histogram in histograms]

    return Velocity(data["entered"], data["moved_on"], days(data["move_days"]), data["window"], days(data["convert_days"]), window_micros, days(data["waiting_days"]))


def merge(defs: Definitions, partials: list[Partial]) -> dict[str, Any]:
    """The report of SPEC §5 from every worker's share."""
    totals = Aggregates.empty(defs)
    counts = EventCounts()
    qualification = [0] * len(QUALIFICATIONS)
    identity = [0, 0, 0]
    for part in partials:
        counts.merge(part.counts)
        identity = [a + b for a, b in zip(identity, part.identity, strict=True)]
        totals.merge(part.aggregates)
        qualification = [a + b for a, b in zip(qualification, part.qualification, strict=True)]
    totals.standing = qualification  # already settled at the cluster watermark by each worker
    totals.pending.clear()  # and so counted in `standing` already: a partial made in process still holds them
    marks = [p.watermark for p in partials if p.watermark is not None]
    return build_report(defs, counts, max(marks) if marks else None, totals, IdentityCounts(*identity))
