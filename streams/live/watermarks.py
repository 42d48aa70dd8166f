"""The cluster's watermark: each worker announces its own on journey.watermarks and follows
everyone's, because time-based lead changes (an MQL going stale) depend on the latest.

The follower never ends the worker: a broker that fails it is retried with backoff, and
reading the topic from its start again is harmless (a watermark only moves forward).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from projections.changes import LeadChange
from streams.kafka import topics
from streams.live.pipeline import BatchPipeline

log = logging.getLogger("journey.worker")

BACKOFF_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0)


@dataclass
class Watermarks:
    bootstrap: str
    topic: faust.TopicT  # journey.watermarks, for announcing
    own_url: Callable[[], str]  # this worker's key on the topic
    pipeline: BatchPipeline
    publish: Callable[[Sequence[LeadChange]], Awaitable[None]]
    _announced: int | None = field(default=None, init=False)
    _failures: int = field(default=0, init=False)  # in a row: how long to wait before the next try

    async def announce(self) -> None:
        """This worker's watermark, when it moved since the last announcement."""
        mark = self.pipeline.projection.local_watermark()
        if mark is None or (self._announced is not None and mark <= self._announced):
            return
        self._announced = mark
        await self.topic.send(key=self.own_url().encode(), value=b"%d" % mark)

    async def follow(self) -> None:
        """Learn every worker's watermark, for as long as the worker runs."""
        while True:
            try:
                await self._follow()
            except KafkaError as exc:
                delay = BACKOFF_SECONDS[min(self._failures, len(BACKOFF_SECONDS) - 1)]
                self._failures += 1
                log.warning("following %s failed (%s: %s); trying again in %.1f s", topics.WATERMARKS, type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, group_id=None)
        await consumer.start()
        self._failures = 0
        try:
            tp = TopicPartition(topics.WATERMARKS, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            while True:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                marks = [int(m.value) for m in batch.get(tp, []) if m.value and m.value.isdigit()]
                if marks and self.pipeline.ready.is_set():
                    await self._learn(max(marks))
        finally:
            await consumer.stop()

    async def _learn(self, mark: int) -> None:
        projection = self.pipeline.projection
        async with self.pipeline.lock:  # the leads as the store has them, not halfway through a batch
            before = projection.cluster_watermark
            changes = projection.learn_watermark(mark, self.pipeline.view())
            if changes:
                try:
                    await self.publish(changes)
                except KafkaError:
                    projection.unlearn_watermark(before)  # learnt again, changes and all, on the next try
                    raise
