"""SPEC §11 on a running worker: it follows journey.definitions and switches when the cluster's
definitions change, without a restart.

A new `current` record (a promotion), its tombstone (back to each worker's own file) and a
restart onto other definitions are the same switch: between two batches, the projection counts
again under the new definitions from the lead table (the state holds facts only, so nothing
stored changes), then journey.lead-changes catches up (streams/live/catchup.py: a change for
every lead whose stage or level differs from what the topic last said, `cause: {"definitions":
DIGEST}`, then the record naming the new definitions). A worker killed in the middle reads the
same `current` record when it starts again, and the catch-up runs again: at-least-once, never
none. A new or dropped `shadow` only changes what the projection counts beside its own.

The follower never ends the worker (Faust ends a worker whose task raises): a broker error, or
anything else, is logged and retried with backoff, the switch included.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from projections import Definitions
from streams.kafka import topics
from streams.kafka.compacted import end_offset
from streams.kafka.definitions import Recorded, in_effect
from streams.kafka.definitions import digest_of as _digest
from streams.live.catchup import CatchUp
from streams.live.following import WentWell, follow_forever
from streams.live.pipeline import BatchPipeline

log = logging.getLogger("journey.worker")


@dataclass
class Redefinitions:
    bootstrap: str
    embedded: bool
    file_defs: Definitions  # the worker's own --definitions (or the defaults): effective without a `current` record
    pipeline: BatchPipeline
    catch_up: CatchUp
    recorded: Recorded = field(default_factory=Recorded)  # journey.definitions as last read
    applied: asyncio.Event = field(default_factory=asyncio.Event)  # set each time what was read is in effect
    _catching_up: bool = field(default=False, init=False)  # a switch whose catch-up has not ended yet
    _refused: str | None = field(default=None, init=False)  # definitions not switched to, reported once

    def wanted(self) -> tuple[Definitions, Definitions | None]:
        """The effective definitions and the shadow, as journey.definitions last read says. Identity
        options never change under a group's state (SPEC §9, streams/live/identity_options.py):
        definitions with others are reported and not switched to."""
        defs, shadow = in_effect(self.file_defs, self.recorded)
        running = self.pipeline.projection.defs
        if defs.identity != running.identity:
            if self._refused != defs.digest:
                log.error(
                    "definitions %s have other identity options than this group's state; staying on %s (identity options change with a new group: docs/upgrading.md)",
                    defs.digest, running.digest,
                )
                self._refused = defs.digest
            return running, shadow if shadow is not None and shadow.identity == running.identity else None
        return defs, shadow

    async def follow(self) -> None:
        """Follow journey.definitions for as long as the worker runs."""
        await follow_forever(topics.DEFINITIONS, self._follow)

    async def _follow(self, went_well: WentWell) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, group_id=None)
        await consumer.start()
        try:
            tp = TopicPartition(topics.DEFINITIONS, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end, reached = await end_offset(consumer, tp, self.bootstrap, self.embedded), False  # nothing is applied before the topic is read to its end as of now
            latest: dict[bytes, bytes] = {}
            read: dict[bytes, bytes] | None = None  # what `recorded` was made of
            while True:
                for message in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                    if message.key is None:
                        continue
                    if message.value is None:
                        latest.pop(message.key, None)
                    else:
                        latest[message.key] = message.value
                reached = reached or await consumer.position(tp) >= end
                if not reached:
                    continue
                if latest != read:
                    self.recorded, read = Recorded.of(latest), dict(latest)
                await self.apply()
                went_well()
        finally:
            await consumer.stop()

    async def apply(self) -> None:
        """Bring the projection to what journey.definitions says, once the worker is ready (until
        then, the rebuild after recovery counts under them and catches up)."""
        defs, shadow = self.wanted()
        projection, pipeline = self.pipeline.projection, self.pipeline
        if _digest(defs) == _digest(projection.defs) and _digest(shadow) == _digest(projection.shadow_defs) and not self._catching_up:
            self.applied.set()
            return
        async with pipeline.lock:
            if not pipeline.ready.is_set():
                return  # recovering: applied on a later round, once ready (the rebuild counts under what runs now)
            switched = defs.digest != projection.defs.digest
            if switched or _digest(shadow) != _digest(projection.shadow_defs):
                if not await pipeline.flush_or_forget(read_again=True):
                    return  # the broker did not take the batch: tried again on the next round
                before = projection.defs.digest
                projection.redefine(defs, shadow, pipeline.store.items())
                log.info("definitions %s, shadow %s: counted again from the lead table (%s before)", defs.digest, _digest(shadow) or "none", before)
            self._catching_up = self._catching_up or switched
            if self._catching_up:
                await self.catch_up.run(set(projection.partitions))
                self._catching_up = False
        self.applied.set()

    async def settled(self, check: Callable[[], bool], timeout: float) -> bool:
        """Wait until `check()` holds (this worker applied a record), at most `timeout` seconds."""
        async def wait() -> None:
            while not check():
                self.applied.clear()
                await self.applied.wait()

        try:
            await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            return False
        return True

