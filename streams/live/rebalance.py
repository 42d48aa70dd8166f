"""Rebalances: a revocation lets the batch under way finish and writes the waiting one locally
before Faust hands the partitions on; after table recovery, the projection of the partitions
this worker now owns is derived from its tables and the change stream caught up (SPEC §7).
Only then does the worker count as ready again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from faust.types import TP

from streams.kafka import topics
from streams.kafka.errors import BrokerError
from streams.live.catchup import CatchUp
from streams.live.commits import OffsetCommits
from streams.live.gaps import GapGuard
from streams.live.pipeline import BatchPipeline
from streams.live.readiness import CATCHING_UP_CHANGES, REBUILDING, Readiness

log = logging.getLogger("journey.worker")


@dataclass
class Rebalancing:
    pipeline: BatchPipeline
    catch_up: CatchUp
    gaps: Iterable[GapGuard]  # one per topic the pipeline reads
    active: Callable[[], Iterable[TP]]  # the partitions the assignor gave this worker as active
    joined: Callable[[], None]  # called at every assignment (the worker remembers its group member id)
    readiness: Readiness  # GET /readyz: not ready from a revocation until rebuilt and caught up
    commits: OffsetCommits  # offsets committed for lag tools, after the local writes

    async def rebuild(self) -> None:
        """After table recovery: derive this worker's aggregates from its tables."""
        pipeline = self.pipeline
        self.readiness.phase = REBUILDING
        async with pipeline.lock:
            await pipeline.flush_or_forget(read_again=False)
        active = {tp.partition for tp in self.active() if tp.topic == topics.EVENTS}
        pipeline.projection.rebuild(pipeline.store.items(), active)
        self.readiness.phase = CATCHING_UP_CHANGES
        while True:
            try:
                await self.catch_up.run(active)
                break
            except BrokerError as exc:
                log.warning("catching up journey.lead-changes failed (%s); trying again", exc)
                await asyncio.sleep(1.0)
        pipeline.ready.set()
        log.info("projection rebuilt for partitions %s", sorted(active))

    async def revoked(self, revoked: Iterable[TP]) -> None:
        pipeline = self.pipeline
        async with pipeline.lock:  # a batch under way finishes first, with its changelog and local writes
            await pipeline.flush_or_forget(read_again=False)
            pipeline.ready.clear()
            self.readiness.reset()
        await self.commits.revoked({tp.partition for tp in revoked if tp.topic == topics.EVENTS})
        for tp in revoked:
            if tp.topic == topics.EVENTS:
                pipeline.projection.drop(tp.partition)
                for gaps in self.gaps:
                    gaps.forget(tp.partition)

    async def assigned(self, assigned: Iterable[TP]) -> None:
        self.joined()
        if not any(tp.topic == topics.EVENTS for tp in assigned):
            await self.rebuild()  # no tables to recover: nothing else will call it
