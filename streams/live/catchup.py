"""SPEC §7's catch-up: before a partition counts as ready, journey.lead-changes speaks for it
under this worker's definitions.

journey.lead-changes.definitions (compacted, one record per partition of journey.events)
holds the definitions the topic last published under. Per partition that published under
others, in order: the changes the core decides (`projections.live.catch_up`) are published and
acknowledged, then the record naming the new definitions. A worker killed in between leaves
the old record, so the next owner publishes the changes again (at-least-once), never none.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import faust

from projections import Definitions
from projections.changes import LeadChange
from projections.live import LiveProjection, catch_up
from streams.kafka import topics
from streams.kafka.compacted import latest_values
from streams.live.changes import published_under, read_published_under
from streams.live.pauses import pause
from streams.live.store import LeadStore

log = logging.getLogger("journey.worker")


@dataclass
class CatchUp:
    bootstrap: str
    embedded: bool
    projection: LiveProjection
    store: LeadStore
    record_topic: faust.TopicT  # journey.lead-changes.definitions
    publish: Callable[[Sequence[LeadChange]], Awaitable[None]]  # sent and acknowledged on return

    async def run(self, active: set[int]) -> None:
        if not active:
            return
        defs = self.projection.defs
        records = await latest_values(self.bootstrap, topics.CHANGES_DEFINITIONS, self.embedded)
        behind: dict[int, Definitions | None] = {}
        for partition in sorted(active):
            value = records.get(b"%d" % partition)
            if value is None:
                # Never projected before, or by a journey older than SPEC §7's catch-up: the
                # topic speaks under these definitions from here on.
                await self._record(partition)
                continue
            old = read_published_under(value)
            if old is None:
                log.error("partition %d: cannot read what %s says of it; publishing every lead of it", partition, topics.CHANGES_DEFINITIONS)
            if old is None or old.digest != defs.digest:
                behind[partition] = old
        if behind:
            await self._publish(behind)

    async def _publish(self, behind: dict[int, Definitions | None]) -> None:
        defs = self.projection.defs
        changes = catch_up(defs, self.store.items(), behind, await self._cluster_watermark())
        for partition, found in changes.items():
            old = behind[partition]
            log.info("partition %d: publishing %d lead changes, definitions %s -> %s", partition, len(found), "unknown" if old is None else old.digest, defs.digest)
            await self.publish(found)
            await self._record(partition)
            log.info("partition %d: journey.lead-changes caught up to definitions %s", partition, defs.digest)
            await pause("catch-up")

    async def _cluster_watermark(self) -> int | None:
        """The latest watermark any worker announced: both sides of the catch-up are judged at it."""
        marks = await latest_values(self.bootstrap, topics.WATERMARKS, self.embedded)
        announced = [int(v) for v in marks.values() if v.isdigit()]
        return max([*announced, self.projection.cluster_watermark or 0]) or None

    async def _record(self, partition: int) -> None:
        key, value = published_under(partition, self.projection.defs)
        await (await self.record_topic.send(key=key, value=value))
