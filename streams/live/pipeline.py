"""The hot path: each fetch of journey.events folded as one batch, its records sent, and the
batch before it written locally once the broker holds them (streams/live/store.py).

Per batch, in order:
1. the fetch is folded (`LiveProjection.process`) into a `LeadBatch`, the leads it touched per
   partition with the partition's progress last, and its lead changes are settled;
2. its dead letters and lead changes are sent, and its changelog records;
3. the batch before it is acknowledged and written to the local store in one `WriteBatch`
   per partition, with the changelog offset it reaches.

So the broker acknowledges one batch while the next folds, and the local store never holds
what the changelog lacks. One batch at a time: rebalances and the watermark follower take
`lock` too, so they never see a lead halfway through a batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from aiokafka.errors import KafkaError
from faust.types import TP

from projections.changes import LeadChange
from projections.live import BatchResult, LiveProjection
from schemas import Rejection
from streams.kafka import topics
from streams.kafka.batches import BatchProducer
from streams.kafka.deadletters import DeadLetter
from streams.live.changes import change_records
from streams.live.gaps import GapGuard
from streams.live.metrics import WorkerMetrics
from streams.live.store import LeadBatch, LeadStore, Pending

log = logging.getLogger("journey.worker")

Seek = Callable[[int, int], Awaitable[None]]


@dataclass
class Outlets:
    """Where a batch goes besides the projection: the producer, the changelog topic, the consumer's seek."""

    producer: Callable[[], BatchProducer]
    changelog: str
    seek: Seek
    announce: Callable[[], Awaitable[None]]  # the worker's watermark, once a batch is written
    written: Callable[[int, int], None]  # a partition's progress written locally: its next offset (streams/live/commits.py)


class BatchPipeline:
    """The `BatchSink` of streams/live/internals.py: what Faust's consumer hands each fetch of the topic to."""

    topic = topics.EVENTS

    def __init__(self, projection: LiveProjection, store: LeadStore, gaps: GapGuard, metrics: WorkerMetrics, outlets: Outlets) -> None:
        self.projection = projection
        self.store = store
        self.gaps = gaps
        self.metrics = metrics
        self.outlets = outlets
        self.lock = asyncio.Lock()  # one batch at a time; rebalances and watermarks wait for it
        self.ready = asyncio.Event()  # set once the tables are recovered and the projection rebuilt
        self._pending: Pending | None = None  # sent, not yet acknowledged and written locally

    async def deliver(self, fetched: Mapping[TP, list[tuple[int, bytes]]]) -> None:
        """One fetch of journey.events (streams/live/internals.py), applied as one batch.

        Nothing is applied while the tables recover or a rebalance is under way:
        the fetch is dropped, and once the tables are recovered each partition is
        sought back to its progress (`positions`)."""
        async with self.lock:
            if not self.ready.is_set():
                return
            with self.metrics.batch_seconds.time():
                batch, result = await self._project(fetched)
                try:
                    sent = await self._send(batch, result)
                except KafkaError as exc:
                    await self.forget(exc, read_again=True)
                    return
                if await self.flush_or_forget(read_again=True):
                    self._pending = sent

    async def idle(self) -> None:
        """A fetch brought no journey.events records: the batch still waiting is written locally."""
        if self._pending is not None:
            async with self.lock:
                await self.flush_or_forget(read_again=True)

    async def _project(self, fetched: Mapping[TP, list[tuple[int, bytes]]]) -> tuple[LeadBatch, BatchResult]:
        projection = self.projection
        batch, result = self.view(), BatchResult()
        before = projection.cluster_watermark
        for tp, records in fetched.items():
            partition = tp.partition
            if partition not in projection.partitions:
                continue  # fetched just before the partition went to another worker
            usable = await self.gaps.contiguous(partition, projection.next_offset(partition), [offset for offset, _ in records])
            if not usable:
                continue
            projection.process(partition, records if usable == len(records) else records[:usable], batch.partition(partition), result)
            self.metrics.count(usable, [Rejection(bad.reason).kind for bad in result.invalid if bad.partition == partition])
        projection.settle(result, before, batch)
        return batch, result

    async def _send(self, batch: LeadBatch, result: BatchResult) -> Pending:
        """Send a batch's changelog records, dead letters and lead changes, without waiting."""
        out = self.outlets.producer()
        pending = Pending()
        for partition, view in batch.partitions.items():
            if view.entries:
                pending.entries[partition] = view.entries
                pending.next_offsets[partition] = self.projection.next_offset(partition)
                records = ((key.encode(), value, []) for key, value in view.entries.items())
                pending.changelog[partition] = await out.send(self.outlets.changelog, partition, records)
        if result.invalid:
            letters = [DeadLetter.of(bad.reason, topics.EVENTS, bad.partition, bad.offset, bad.value).encode() for bad in result.invalid]
            pending.others.append(await out.send(topics.DLQ, 0, ((None, value, headers) for value, headers in letters)))
        if result.changes:
            pending.others += await out.send_keyed(topics.LEAD_CHANGES, change_records(result.changes))
        return pending

    async def publish_changes(self, changes: Sequence[LeadChange]) -> None:
        """Lead changes from outside a batch (catch-up, a later watermark): all sent at once, then
        each acknowledged. One at a time, a round trip each, 400 of them held the batch lock for
        half a second (docs/performance.md)."""
        for sent in await self.outlets.producer().send_keyed(topics.LEAD_CHANGES, change_records(changes)):
            await sent.acknowledged()

    async def _flush(self) -> None:
        """Wait for the pending batch's acknowledgements, then write its leads locally."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        for sent in pending.others:
            await sent.acknowledged()
        for partition, sent in pending.changelog.items():
            self.store.write(partition, pending.entries[partition], await sent.last_offset())
            self.outlets.written(partition, pending.next_offsets[partition])  # committed for lag tools, later
        await self.outlets.announce()

    async def flush_or_forget(self, *, read_again: bool) -> bool:
        """The waiting batch written locally; False when the broker did not take it, which is then
        forgotten (`forget`)."""
        try:
            await self._flush()
        except KafkaError as exc:
            await self.forget(exc, read_again=read_again)
            return False
        return True

    async def forget(self, exc: KafkaError, *, read_again: bool) -> None:
        """After a batch that could not be written: forget what it folded. With `read_again`, the
        aggregates are derived again from the store and each partition is sought to its progress;
        without (before a rebalance or a rebuild), the rebuild after recovery does both."""
        then = "reading its events again" if read_again else "its partitions are read again after the rebalance"
        log.error("a batch could not be written to the changelog (%s: %s); %s", type(exc).__name__, exc, then)
        if not read_again:
            return
        owned = set(self.projection.partitions)
        self.projection.rebuild(self.store.items(), owned)
        for partition in owned:
            await self.outlets.seek(partition, self.projection.next_offset(partition))

    def view(self) -> LeadBatch:
        """The lead table as the projection has it: the batch still waiting to be written locally first."""
        return LeadBatch(self.store, None if self._pending is None else self._pending.entries)

    def lead(self, lead_id: str) -> bytes | None:
        """A lead as the report counts it, written locally or not yet."""
        return self.view().get(lead_id)

    def positions(self, assigned: set[TP]) -> dict[TP, int]:
        """Where each assigned journey.events partition continues: one past its progress."""
        owned = self.projection.partitions
        return {tp: self.projection.next_offset(tp.partition) for tp in assigned if tp.topic == topics.EVENTS and tp.partition in owned}
