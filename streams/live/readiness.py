"""Readiness (`GET /readyz`): whether this worker answers for its partitions as of now.

A worker is ready once, after its latest assignment,
1. its tables are recovered from their changelogs (Faust's recovery),
2. the projection of its partitions is rebuilt from them and journey.lead-changes caught up
   to its definitions (streams/live/rebalance.py), and
3. each of its partitions of journey.events, and of the identity topic read beside it, is
   applied up to the end offset that partition had when step 2 finished (the "targets",
   read from the broker once).

It then stays ready until the next rebalance: lag that grows afterwards is load, shown by
`journey_consumer_lag`, not a reason to take the worker out of service. Until then `reason()`
says what it waits for, in words an operator reads on the 503.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from projections.live import LiveProjection

log = logging.getLogger("journey.worker")

RECOVERING = "recovering tables"
REBUILDING = "rebuilding the projection"
CATCHING_UP_CHANGES = "catching up journey.lead-changes"
READING_ENDS = "reading the end offsets of journey.events"

Key = tuple[str, int]  # (topic, partition)
EndOffsets = Callable[[list[int]], Awaitable[dict[Key, int]]]  # partitions -> the end offsets of the topics read
NextOffset = Callable[[str, int], int]  # (topic, partition) -> where the worker continues: one past its progress


class Readiness:
    def __init__(self, projection: LiveProjection, rebuilt: asyncio.Event, end_offsets: EndOffsets, next_offset: NextOffset) -> None:
        self.projection = projection
        self.rebuilt = rebuilt  # the pipeline's: set once the projection is rebuilt (steps 1 and 2)
        self.end_offsets = end_offsets
        self.next_offset = next_offset
        self.phase = RECOVERING
        self._targets: dict[Key, int] | None = None
        self._ready = False
        self._generation = 0

    def reset(self, phase: str = RECOVERING) -> None:
        """A rebalance began (or the rebuild moved on to `phase`): not ready until all three steps are done again."""
        self.phase = phase
        self._targets = None
        self._ready = False
        self._generation += 1

    def reason(self) -> str | None:
        """None when ready; else what the worker waits for."""
        if self._ready:
            return None
        if not self.rebuilt.is_set():
            return self.phase
        if self._targets is None:
            return READING_ENDS
        owned = self.projection.partitions
        behind = {key: end - self.next_offset(*key) for key, end in self._targets.items() if key[1] in owned and self.next_offset(*key) < end}
        if behind:
            (topic, partition), records = min(behind.items(), key=lambda item: (item[0][1], item[0][0]))
            return f"catching up partition {partition} ({records} records of {topic} behind)"
        self._ready = True
        log.info("ready: partitions %s caught up to %s", sorted(owned), self._targets)
        return None

    async def tick(self) -> None:
        """Read the targets once the projection is rebuilt (every second, on the app's timer)."""
        if self._ready or self._targets is not None or not self.rebuilt.is_set():
            return
        generation = self._generation
        try:
            ends = await self.end_offsets(sorted(self.projection.partitions))
        except Exception as exc:  # noqa: BLE001 - the broker or a rebalance; the next tick asks again
            log.warning("reading the end offsets of journey.events for readiness failed (%s: %s); trying again", type(exc).__name__, exc)
            return
        if generation == self._generation and self.rebuilt.is_set():
            self._targets = ends
            self.reason()
