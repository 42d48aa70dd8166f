"""SPEC §11's shadow: what a candidate set of definitions says of the persons a worker holds, beside
what its current definitions say.

The lead state holds facts only, so a shadow needs no state of its own and costs the hot path
nothing: a worker derives its share when asked, from the same entries a rebuild reads
(`projections.live.persons`), each person's view under both definitions. What it gives is what
replay's comparison (`Projector.comparison`) counts over the same persons: the candidate's
aggregates, and who moves between stages and qualification levels at the cluster's watermark.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from projections.definitions import Definitions
from projections.lead import view
from projections.live import LiveProjection, persons
from projections.partition import PartitionState
from projections.report import Aggregates, Changes


@dataclass
class ShadowShare:
    """One worker's share of a comparison: its partitions under the candidate, and who moves."""

    candidate: LiveProjection  # the candidate's partitions, read as a live projection reads its own
    changes: Changes


def shadow_share(current: Definitions, candidate: Definitions, entries: Iterable[tuple[Any, bytes]], active: set[int], watermark: int | None) -> ShadowShare:
    """The `active` partitions of the lead table's entries under `candidate`, and the persons whose
    stage or qualification level differs from `current`'s at `watermark` (replay judges at the log's
    watermark, 0 for an empty log: so does this). Both definitions share their identity options
    (SPEC §9: the group's), so both sides have the same persons."""
    parts = {p: PartitionState(Aggregates.empty(candidate)) for p in active}
    changes, mark = Changes(), watermark or 0
    for partition, key, state in persons(entries, parts):
        new = view(key, state, candidate)
        parts[partition].replace(None, new)
        changes.add(view(key, state, current), current, new, candidate, mark)
    projection = LiveProjection(candidate, compiled=False)
    projection.partitions = parts
    projection.cluster_watermark = watermark
    return ShadowShare(projection, changes)
