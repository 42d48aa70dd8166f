"""The hot path: each fetch of journey.events and of the identity topic folded as one batch, its
records sent, and the batch before it written locally once the broker holds them
(streams/live/store.py).

Per batch, in order:
1. the fetch is folded into a `LeadBatch`: each partition's events (`LiveProjection.process`,
   guarded by streams/live/poison.py: a record the fold raises on goes to the DLQ), then its
   identity messages (`LiveProjection.link`, SPEC §9), the owners they touched with the
   partition's progress last; its lead changes are settled;
2. its dead letters, lead changes and identity messages are sent, without waiting;
3. the batch before it (`_acking`) has its messages acknowledged, then its changelog records
   sent: a worker killed before keeps none of that batch, and folds it again, so nothing the
   final state depends on is ever in the changelog without what it sent;
4. the batch before that (`_writing`) has its changelog acknowledged and is written to the local
   store in one `WriteBatch` per partition, with the changelog offset it reaches.

So the broker acknowledges a batch's messages while the next one folds, and its changelog while
the one after that does; reads see the two batches not yet written locally (`view`), and the
local store never holds what the changelog lacks. One batch at a time: rebalances and the
watermark follower take `lock` too, so they never see a lead halfway through a batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from aiokafka.errors import KafkaError
from faust.types import TP

from projections.changes import LeadChange
from projections.linking import Claim, Facts
from projections.live import BatchResult, LiveProjection
from schemas import Rejection
from streams.kafka import topics
from streams.kafka.batches import BatchProducer
from streams.kafka.deadletters import DeadLetter
from streams.live import identity as wire
from streams.live.changes import change_records
from streams.live.gaps import GapGuard
from streams.live.metrics import WorkerMetrics
from streams.live.poison import PoisonGuard
from streams.live.store import LeadBatch, LeadStore, Pending

log = logging.getLogger("journey.worker")

Seek = Callable[[str, int, int], Awaitable[None]]  # topic, partition, offset


@dataclass
class Outlets:
    """Where a batch goes besides the projection: the producer, the changelog and identity topics, the consumer's seek."""

    producer: Callable[[], BatchProducer]
    changelog: str
    identity: str
    seek: Seek
    announce: Callable[[], Awaitable[None]]  # the worker's watermark, once a batch is written
    written: Callable[[str, int, int], None]  # progress written locally: (topic, partition, next offset) (streams/live/commits.py)


class BatchPipeline:
    """The `BatchSink` of streams/live/internals.py: what Faust's consumer hands each fetch of the topic to."""

    def __init__(self, projection: LiveProjection, store: LeadStore, gaps: dict[str, GapGuard], metrics: WorkerMetrics, outlets: Outlets) -> None:
        self.projection = projection
        self.store = store
        self.gaps = gaps  # per topic: journey.events and the identity topic
        self.metrics = metrics
        self.outlets = outlets
        self.topics = frozenset({topics.EVENTS, outlets.identity})
        self.lock = asyncio.Lock()  # one batch at a time; rebalances and watermarks wait for it
        self.ready = asyncio.Event()  # set once the tables are recovered and the projection rebuilt
        # The batches not written locally yet, the newest first; each one's leads are seen by reads
        # (`view`) from the moment it folds them, as its counts are:
        self._folding: LeadBatch | None = None  # being folded (step 1), its messages being sent (step 2)
        self._sending: Pending | None = None  # its messages sent, its changelog not yet (step 3)
        self._acking: Pending | None = None  # the one before, while its messages are acknowledged (step 3)
        self._writing: Pending | None = None  # its changelog sent, not yet acknowledged and written locally (step 4)
        self.guard = PoisonGuard(projection, metrics.poison_record)  # a record the fold raises on goes to the DLQ

    async def deliver(self, fetched: Mapping[TP, list[tuple[int, bytes]]]) -> None:
        """One fetch of journey.events (streams/live/internals.py), applied as one batch.

        Nothing is applied while the tables recover or a rebalance is under way:
        the fetch is dropped, and once the tables are recovered each partition is
        sought back to its progress (`positions`)."""
        async with self.lock:
            if not self.ready.is_set():
                return
            with self.metrics.batch_seconds.time():
                try:
                    batch, result = await self._project(fetched)
                    self._acking, self._sending = self._sending, await self._send(batch, result)
                    self._folding = None
                    await self._write()
                    await self._send_changelog()
                except KafkaError as exc:
                    await self.forget(exc, read_again=True)
                    return

    async def idle(self) -> None:
        """A fetch brought no journey.events records: the batches still waiting are written locally."""
        if self._sending is not None or self._acking is not None or self._writing is not None:
            async with self.lock:
                await self.flush_or_forget(read_again=True)

    async def _project(self, fetched: Mapping[TP, list[tuple[int, bytes]]]) -> tuple[LeadBatch, BatchResult]:
        projection = self.projection
        batch, result = self.view(), BatchResult()
        self._folding = batch
        before = projection.cluster_watermark
        events = {tp.partition: records for tp, records in fetched.items() if tp.topic == topics.EVENTS}
        messages = {tp.partition: records for tp, records in fetched.items() if tp.topic != topics.EVENTS}
        for partition, records in events.items():
            usable = await self._usable(topics.EVENTS, partition, projection.next_offset(partition), records)
            if usable:
                self.guard.fold(partition, usable, batch, result)
                self.metrics.count(len(usable), [Rejection(bad.reason).kind for bad in result.invalid if bad.partition == partition])
        for partition, records in messages.items():
            usable = await self._usable(self.outlets.identity, partition, projection.next_identity_offset(partition), records)
            if usable:
                view = batch.partition(partition)
                projection.link(partition, self._readable(partition, usable), view, result, view.scan)
        projection.settle(result, before, batch)
        return batch, result

    async def _usable(self, topic: str, partition: int, next_offset: int, records: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
        """The records that may be applied now: none of a partition that went to another worker
        just before; up to the first gap (streams/live/gaps.py)."""
        if partition not in self.projection.partitions:
            return []
        usable = await self.gaps[topic].contiguous(partition, next_offset, [offset for offset, _ in records])
        return records if usable == len(records) else records[:usable]

    def _readable(self, partition: int, records: list[tuple[int, bytes]]) -> list[tuple[int, Claim | Facts]]:
        """Identity messages as the core takes them; one this journey cannot read is logged and passed over."""
        readable = []
        for offset, value in records:
            message = wire.decode(value)
            if isinstance(message, wire.Unreadable):
                log.error("%s partition %d offset %d: %s; passed over", self.outlets.identity, partition, offset, message.reason)
                self.metrics.unreadable_identity()
                continue
            readable.append((offset, message))
        return readable

    async def _send(self, batch: LeadBatch, result: BatchResult) -> Pending:
        """Send a batch's dead letters, lead changes and identity messages, without waiting; its
        changelog waits for them (`_send_changelog`)."""
        out = self.outlets.producer()
        pending = Pending()
        if result.invalid:
            letters = [DeadLetter.of(bad.reason, topics.EVENTS, bad.partition, bad.offset, bad.value).encode() for bad in result.invalid]
            pending.others.append(await out.send(topics.DLQ, 0, ((None, value, headers) for value, headers in letters)))
        if result.changes:
            pending.others += await out.send_keyed(topics.LEAD_CHANGES, change_records(result.changes))
        if result.messages:
            records = [(target.encode("utf-8", "surrogatepass"), wire.encode(message), []) for target, message in result.messages]
            pending.others += await out.send_keyed(self.outlets.identity, records)
        for partition, view in batch.partitions.items():
            if view.entries:
                pending.entries[partition] = view.entries
                pending.next_offsets[partition] = self._next_offsets(partition)
        return pending

    async def _send_changelog(self) -> None:
        """The batch whose messages were sent the time before (`_acking`): once the broker holds them,
        its changelog records are sent, without waiting; it is written locally next time (`_write`)."""
        sending = self._acking
        if sending is None:
            return
        for sent in sending.others:
            await sent.acknowledged()
        out = self.outlets.producer()
        for partition, entries in sending.entries.items():
            records = ((key.encode("utf-8", "surrogatepass"), value, []) for key, value in entries.items())
            sending.changelog[partition] = await out.send(self.outlets.changelog, partition, records)
        self._writing, self._acking = sending, None

    async def publish_changes(self, changes: Sequence[LeadChange]) -> None:
        """Lead changes from outside a batch (catch-up, a later watermark): all sent at once, then
        each acknowledged. One at a time, a round trip each, 400 of them held the batch lock for
        half a second (docs/performance.md)."""
        for sent in await self.outlets.producer().send_keyed(topics.LEAD_CHANGES, change_records(changes)):
            await sent.acknowledged()

    async def _write(self) -> None:
        """The batch whose changelog was sent (`_writing`): once the broker holds it, its leads are
        written locally. Reads see it (`view`) until then: it is let go only once in the store."""
        writing = self._writing
        if writing is None:
            return
        for partition, sent in writing.changelog.items():
            self.store.write(partition, writing.entries[partition], await sent.last_offset())
            for topic, offset in writing.next_offsets[partition].items():
                self.outlets.written(topic, partition, offset)  # committed for lag tools, later
        self._writing = None
        await self.outlets.announce()

    async def flush_or_forget(self, *, read_again: bool) -> bool:
        """The batches waiting, written locally (the older first); False when the broker did not take
        them, which are then forgotten (`forget`)."""
        try:
            await self._write()
            await self._send_changelog()
            if self._sending is not None:
                self._acking, self._sending = self._sending, None
                await self._send_changelog()
            await self._write()
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
        self._folding, self._sending, self._acking, self._writing = None, None, None, None
        if not read_again:
            return
        owned = set(self.projection.partitions)
        self.projection.rebuild(self.store.items(), owned)
        for partition in owned:
            await self.outlets.seek(topics.EVENTS, partition, self.projection.next_offset(partition))
            await self.outlets.seek(self.outlets.identity, partition, self.projection.next_identity_offset(partition))

    def view(self) -> LeadBatch:
        """The lead table as the projection has it: the batches still waiting to be written locally first."""
        pending = [] if self._folding is None else [{p: view.entries for p, view in self._folding.partitions.items()}]
        pending += [waiting.entries for waiting in (self._sending, self._acking, self._writing) if waiting is not None]
        return LeadBatch(self.store, pending)

    def lead(self, lead_id: str) -> bytes | None:
        """A lead as the report counts it, written locally or not yet."""
        return self.view().get(lead_id)

    def _next_offsets(self, partition: int) -> dict[str, int]:
        """Where a partition of each topic the pipeline reads continues, as the projection has it now."""
        projection = self.projection
        return {topics.EVENTS: projection.next_offset(partition), self.outlets.identity: projection.next_identity_offset(partition)}

    def next_offset(self, topic: str, partition: int) -> int:
        """Where a partition of a topic the pipeline reads continues: one past its progress."""
        return self._next_offsets(partition)[topic]

    def positions(self, assigned: set[TP]) -> dict[TP, int]:
        """Where each assigned partition of journey.events and of the identity topic continues: one past its progress."""
        projection, found = self.projection, {}
        for tp in assigned:
            if tp.partition in projection.partitions and tp.topic in self.topics:
                found[tp] = projection.next_offset(tp.partition) if tp.topic == topics.EVENTS else projection.next_identity_offset(tp.partition)
        return found
