"""The cluster's watermark: each worker announces its own on journey.watermarks and follows
everyone's, because time-based lead changes (an MQL going stale) depend on the latest.

The follower never ends the worker (Faust ends a worker whose task raises): whatever fails it,
a broker error or anything else, is logged and retried with backoff, and reading the topic from
its start again is harmless (a watermark only moves forward). Marks read while the worker is
not ready (tables recovering after a rebalance, as a broker outage can cause) are kept and
learnt once it is, not dropped: another worker announces a mark only when it moves.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition

from projections.changes import LeadChange
from streams.kafka import topics
from streams.live.following import WentWell, follow_forever
from streams.live.pipeline import BatchPipeline

log = logging.getLogger("journey.worker")



@dataclass
class Watermarks:
    bootstrap: str
    topic: faust.TopicT  # journey.watermarks, for announcing
    own_url: Callable[[], str]  # this worker's key on the topic
    pipeline: BatchPipeline
    publish: Callable[[Sequence[LeadChange]], Awaitable[None]]
    _announced: int | None = field(default=None, init=False)

    async def announce(self) -> None:
        """This worker's watermark, when it moved since the last announcement."""
        mark = self.pipeline.projection.local_watermark()
        if mark is None or (self._announced is not None and mark <= self._announced):
            return
        await self.topic.send(key=self.own_url().encode(), value=b"%d" % mark)
        self._announced = mark  # after the send: one that failed is announced again with the next batch

    async def follow(self) -> None:
        """Learn every worker's watermark, for as long as the worker runs."""
        await follow_forever(topics.WATERMARKS, self._follow)

    async def _follow(self, went_well: WentWell) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, group_id=None)
        await consumer.start()
        try:
            tp = TopicPartition(topics.WATERMARKS, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            unlearnt: int | None = None  # the latest mark read, waiting for the worker to be ready
            while True:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                marks = [int(m.value) for m in batch.get(tp, []) if m.value and m.value.isdigit()]
                if marks:
                    unlearnt = max(marks) if unlearnt is None else max(unlearnt, *marks)
                if unlearnt is not None and self.pipeline.ready.is_set():
                    await self._learn(unlearnt)
                    unlearnt = None
                went_well()
        finally:
            await consumer.stop()

    async def _learn(self, mark: int) -> None:
        projection = self.pipeline.projection
        async with self.pipeline.lock:  # the leads as the store has them, not halfway through a batch
            before = projection.cluster_watermark
            try:
                changes = projection.learn_watermark(mark, self.pipeline.view())
                if changes:
                    await self.publish(changes)
            except BaseException:
                projection.unlearn_watermark(before)  # learnt again, changes and all, on the next try
                raise
