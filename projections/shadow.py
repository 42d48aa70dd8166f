"""SPEC §11's shadow on a live worker: what a candidate set of definitions says of the persons the
worker holds, beside what its current definitions say.

The lead state holds facts only, so a shadow is a second set of counts over the same state, not a
second state: each partition's `Shadow` (projections/partition.py) counts every person under the
candidate as the fold moves it (the C fold gives its views under both definitions), and who would
move between stages and levels. Nothing of it is stored: a worker derives it again from the lead
table when it starts, takes partitions, or hears of another shadow (`LiveProjection.redefine`).

What this module gives a worker's HTTP share is what replay's comparison (`Projector.comparison`)
counts over the same persons: the candidate's aggregates, and the changes at the cluster's
watermark.
"""

from __future__ import annotations

from projections.live import LiveProjection
from projections.partition import PartitionState
from projections.report import Changes


def candidate(projection: LiveProjection) -> LiveProjection:
    """The worker's partitions under its shadow definitions, read as a live projection reads its own
    (the events, identity counts and watermarks are the same persons' under any definitions)."""
    shadow = projection.shadow_defs
    if shadow is None:
        raise ValueError("this worker has no shadow definitions")
    found = LiveProjection(shadow, compiled=False)
    found.cluster_watermark = projection.cluster_watermark
    for partition, part in projection.partitions.items():
        assert part.shadow is not None
        counted = part.shadow.state
        found.partitions[partition] = PartitionState(
            counted.aggregates, part.counts, part.watermark, part.progress, counted.stages, part.identity,
        )
    return found


def changes(projection: LiveProjection, watermark: int | None) -> Changes:
    """Who moves between stages and qualification levels from the current definitions to the shadow
    ones at `watermark`, in every partition the worker owns."""
    found = Changes()
    for part in projection.partitions.values():
        assert part.shadow is not None
        part.shadow.changes_at(watermark, found)
    return found
