"""The one wiring point: a Faust app built from Settings, with its topics, table, hot path and views."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from faust.types import TP

from projections import Definitions
from schemas import Rejection
from schemas.platforms import SegmentEvents
from streams.kafka import topics
from streams.kafka.batches import BatchProducer
from streams.kafka.compacted import latest_values
from streams.kafka.deadletters import DeadLetter
from streams.kafka.errors import BrokerError
from streams.kafka.group import remember_member
from streams.live.changes import LeadChange, change_records, read_spoken_under, spoken_under
from streams.live.cluster import Cluster, Peers
from streams.live.embedded import Profile
from streams.live.fetch import BatchConsumer
from streams.live.gaps import RESEEK_SECONDS, GapGuard
from streams.live.ingest import Ingest
from streams.live.metrics import WorkerMetrics
from streams.live.pauses import pause
from streams.live.projection import BatchResult, LiveProjection
from streams.live.store import LeadBatch, LeadStore, Pending
from streams.live.web import Api, register
from streams.settings import Settings

log = logging.getLogger("journey.worker")

PRODUCER_BATCH_BYTES = 512 * 1024  # under Faust's default producer_max_request_size (1,000,000)


class JourneyApp:
    """The Faust app, its agent and background tasks, and the parts its views get."""

    def __init__(self, settings: Settings, defs: Definitions, profile: Profile, ingest_token: str | None, segment_events: SegmentEvents) -> None:
        profile.patch_faust(settings.bootstrap)
        self.settings = settings
        self.defs = defs
        self.profile = profile
        self.projection = LiveProjection(defs)
        self.ready = asyncio.Event()
        self.app = faust.App(
            settings.app_id,
            broker=settings.broker,
            store="rocksdb://" if settings.store == "rocksdb" else "memory://",
            datadir=str(settings.table_dir),
            web_host=settings.web_host,
            web_port=settings.web_port,
            web_bind=settings.web_bind or settings.web_host,
            canonical_url=f"http://{settings.web_host}:{settings.web_port}",
            topic_partitions=settings.partitions,
            topic_replication_factor=settings.replication_factor,
            topic_allow_declare=False,  # ensure_topics made them, with the right partition counts
            table_standby_replicas=0,
            consumer_auto_offset_reset="earliest",
            autodiscover=False,
            web_enabled=True,
            broker_max_poll_records=settings.batch_size,
            # a batch's changelog records go out as few produce requests as possible (streams/kafka/batches.py)
            producer_max_batch_size=PRODUCER_BATCH_BYTES,
            **profile.faust_settings(),
        )
        raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
        # acks=False: its records never reach Faust's acking (streams/live/fetch.py), so Faust's
        # livelock check must not wait for acks and commits of it and log a stalled stream
        self.events = self.app.topic(topics.EVENTS, partitions=settings.partitions, acks=False, **raw)
        self.dlq = self.app.topic(topics.DLQ, partitions=1, **raw)
        self.watermarks = self.app.topic(topics.WATERMARKS, partitions=1, **raw)
        self.spoken = self.app.topic(topics.CHANGES_DEFINITIONS, partitions=1, **raw)
        self.leads = self.app.Table(topics.LEADS_TABLE, partitions=settings.partitions, default=None, key_type=bytes, value_type=bytes)
        self.store = LeadStore(self.leads)
        self._changelog = self.leads.changelog_topic.get_topic_name()
        self._batch_lock = asyncio.Lock()  # one batch at a time; rebalances and watermarks wait for it
        self._pending: Pending | None = None  # sent, not yet acknowledged and written locally
        self._out: BatchProducer | None = None
        self.topic = topics.EVENTS  # the BatchSink of streams/live/fetch.py
        self._announced: int | None = None
        self.gaps = GapGuard(settings.bootstrap, topics.EVENTS, self._seek)
        self.metrics = WorkerMetrics(self.projection, lambda: self.gaps.seeks, self.highwater)
        self._wire(ingest_token, segment_events)

    def _wire(self, ingest_token: str | None, segment_events: SegmentEvents) -> None:
        app, settings = self.app, self.settings

        app.topics.add(self.events)  # subscribed, so the assignor hands out its partitions; no agent reads it
        # Faust's own consumer, with journey.events delivered a fetch at a time to `deliver`
        app.transport.Consumer = type("JourneyConsumer", (BatchConsumer,), {"sink": self})  # type: ignore[misc]
        self.leads.on_recover(self.rebuild)
        app.on_partitions_revoked.connect(self._on_revoked)
        app.on_partitions_assigned.connect(self._on_assigned)
        app.task(self._follow_watermarks)
        app.timer(RESEEK_SECONDS)(self._reseek_waiting)

        read_token = None if settings.read_token is None else settings.read_token.get_secret_value()
        peers = Peers(
            own_url=self._own_url,
            urls=lambda: {str(url) for url in app.assignor.tables_metadata()},
            http=lambda: app.http_client,
            read_token=read_token,
            ready=self.ready,
        )
        api = Api(
            cluster=Cluster(self.projection, peers, settings.partitions),
            leads=self.leads,
            lead=self.lead,
            ingest=Ingest(ingest_token, open_without_token=settings.demo, publish=self._publish_events, segment_events=segment_events),
            metrics=self.metrics.render,
            read_token=None if settings.demo else read_token,  # demo mode never asks for a read token
        )
        register(app, api)

    def _own_url(self) -> str:
        return self.app.conf.canonical_url.human_repr()

    # -- the hot path ----------------------------------------------------------------------

    async def deliver(self, fetched: Mapping[TP, list[tuple[int, bytes]]]) -> None:
        """One fetch of journey.events (streams/live/fetch.py), applied as one batch.

        Nothing is applied while the tables recover or a rebalance is under way:
        the fetch is dropped, and once the tables are recovered each partition is
        sought back to its progress (`positions`).

        The batch's records are sent, and then the previous batch's are waited
        for and written locally: the broker acknowledges one batch while the
        next is folded (streams/live/store.py)."""
        async with self._batch_lock:
            if not self.ready.is_set():
                return
            with self.metrics.batch_seconds.time():
                batch, result = await self._fold(fetched)
                try:
                    sent = await self._send(batch, result)
                except KafkaError as exc:
                    await self._forget(exc, read_again=True)
                    return
                if await self._flush_or_forget(read_again=True):
                    self._pending = sent

    async def idle(self) -> None:
        """A fetch brought no journey.events records: the batch still waiting is written locally."""
        if self._pending is not None:
            async with self._batch_lock:
                await self._flush_or_forget(read_again=True)

    async def _fold(self, fetched: Mapping[TP, list[tuple[int, bytes]]]) -> tuple[LeadBatch, BatchResult]:
        batch, result = self._view(), BatchResult()
        before = self.projection.cluster_watermark
        owned = self.projection.partitions
        for tp, records in fetched.items():
            partition = tp.partition
            if partition not in owned:
                continue  # fetched just before the partition went to another worker
            usable = await self.gaps.contiguous(partition, self.projection.next_offset(partition), [offset for offset, _ in records])
            if not usable:
                continue
            self.projection.process(partition, records if usable == len(records) else records[:usable], batch.partition(partition), result)
            self.metrics.count(usable, [Rejection(bad.reason).kind for bad in result.invalid if bad.partition == partition])
        self.projection.settle(result, before, batch)
        return batch, result

    async def _send(self, batch: LeadBatch, result: BatchResult) -> Pending:
        """Send a batch's changelog records, dead letters and lead changes, without waiting."""
        out = self._producer()
        pending = Pending()
        for partition, view in batch.partitions.items():
            if view.entries:
                pending.entries[partition] = view.entries
                pending.changelog[partition] = await out.send(self._changelog, partition, ((key.encode(), value, []) for key, value in view.entries.items()))
        if result.invalid:
            letters = [DeadLetter.of(bad.reason, topics.EVENTS, bad.partition, bad.offset, bad.value).encode() for bad in result.invalid]
            pending.others.append(await out.send(topics.DLQ, 0, ((None, value, headers) for value, headers in letters)))
        if result.changes:
            pending.others += await out.send_keyed(topics.LEAD_CHANGES, change_records(result.changes))
        return pending

    def _producer(self) -> BatchProducer:
        if self._out is None:
            self._out = BatchProducer(self.app.producer._ensure_producer())
        return self._out

    async def _publish_changes(self, changes: Sequence[LeadChange]) -> None:
        """Lead changes from outside a batch (catch-up, a later watermark): all sent at once, then
        each acknowledged. One at a time, a round trip each, 400 of them held the batch lock for
        half a second (README: Performance)."""
        for sent in await self._producer().send_keyed(topics.LEAD_CHANGES, change_records(changes)):
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
        await self._announce_watermark()

    async def _flush_or_forget(self, *, read_again: bool) -> bool:
        """The waiting batch written locally; False when the broker did not take it, which is then
        forgotten (`_forget`)."""
        try:
            await self._flush()
        except KafkaError as exc:
            await self._forget(exc, read_again=read_again)
            return False
        return True

    async def _forget(self, exc: KafkaError, *, read_again: bool) -> None:
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
            await self._seek(partition, self.projection.next_offset(partition))

    def _view(self) -> LeadBatch:
        """The lead table as the projection has it: the batch still waiting to be written locally first."""
        return LeadBatch(self.store, None if self._pending is None else self._pending.entries)

    def lead(self, lead_id: str) -> bytes | None:
        """A lead as the report counts it, written locally or not yet."""
        return self._view().get(lead_id)

    def positions(self, assigned: set[TP]) -> dict[TP, int]:
        """Where each assigned journey.events partition continues: one past its progress."""
        return {tp: self.projection.next_offset(tp.partition) for tp in assigned if tp.topic == topics.EVENTS and tp.partition in self.projection.partitions}

    def highwater(self, partition: int) -> int | None:
        """The end offset of a journey.events partition as the consumer last saw it."""
        try:
            return self.app.consumer.highwater(TP(topics.EVENTS, partition))
        except Exception:  # noqa: BLE001 - not fetched yet, or the consumer is rebalancing
            return None

    async def _reseek_waiting(self) -> None:
        if not self.ready.is_set():  # not while tables recover: the partitions may be changing hands
            return
        try:
            await self.gaps.reseek_waiting()
        except Exception as exc:  # noqa: BLE001 - a rebalance under way; the next tick tries again
            log.warning("seeking back to a gap failed (%s: %s); trying again", type(exc).__name__, exc)

    async def _seek(self, partition: int, offset: int) -> None:
        await self.app.consumer.seek(TP(topics.EVENTS, partition), offset)

    async def _publish_events(self, records: list[tuple[bytes, bytes]]) -> None:
        """HTTP ingest: publish to journey.events and wait until the broker has acknowledged each."""
        pending = [await self.events.send(key=key, value=value) for key, value in records]
        await asyncio.gather(*pending)

    async def _announce_watermark(self) -> None:
        mark = self.projection.local_watermark()
        if mark is None or (self._announced is not None and mark <= self._announced):
            return
        self._announced = mark
        await self.watermarks.send(key=self._own_url().encode(), value=b"%d" % mark)

    # -- rebalancing -----------------------------------------------------------------------

    async def rebuild(self) -> None:
        """After table recovery: derive this worker's aggregates from its tables."""
        async with self._batch_lock:
            await self._flush_or_forget(read_again=False)
        active = {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topics.EVENTS}
        self.projection.rebuild(self.store.items(), active)
        while True:
            try:
                await self._catch_up_changes(active)
                break
            except BrokerError as exc:
                log.warning("catching up journey.lead-changes failed (%s); trying again", exc)
                await asyncio.sleep(1.0)
        self.ready.set()
        log.info("projection rebuilt for partitions %s", sorted(active))

    async def _catch_up_changes(self, active: set[int]) -> None:
        """SPEC §7: before a partition counts as ready, journey.lead-changes speaks for it under
        this worker's definitions.

        Per partition, in order: the changes are published and acknowledged, then the record
        naming the new definitions. A worker killed in between leaves the old record, so the
        next owner publishes the changes again (at-least-once), never none of them."""
        if not active:
            return
        embedded = self.profile.embedded
        records = await latest_values(self.settings.bootstrap, topics.CHANGES_DEFINITIONS, embedded)
        behind: dict[int, Definitions | None] = {}
        for partition in sorted(active):
            value = records.get(b"%d" % partition)
            if value is None:
                # Never projected before, or by a journey older than SPEC §7's catch-up: the
                # topic speaks under these definitions from here on.
                await self._say_spoken_under(partition)
                continue
            old = read_spoken_under(value)
            if old is None:
                log.error("partition %d: cannot read what %s says of it; publishing every lead of it", partition, topics.CHANGES_DEFINITIONS)
            if old is None or old.digest != self.defs.digest:
                behind[partition] = old
        if not behind:
            return
        marks = await latest_values(self.settings.bootstrap, topics.WATERMARKS, embedded)
        announced = [int(v) for v in marks.values() if v.isdigit()]
        watermark = max([*announced, self.projection.cluster_watermark or 0]) or None
        changes = self.projection.catch_up(self.store.items(), behind, watermark)
        for partition, found in changes.items():
            old_digest = "unknown" if behind[partition] is None else behind[partition].digest
            log.info("partition %d: publishing %d lead changes, definitions %s -> %s", partition, len(found), old_digest, self.defs.digest)
            await self._publish_changes(found)
            await self._say_spoken_under(partition)
            log.info("partition %d: journey.lead-changes caught up to definitions %s", partition, self.defs.digest)
            await pause("catch-up")

    async def _say_spoken_under(self, partition: int) -> None:
        key, value = spoken_under(partition, self.defs)
        await (await self.spoken.send(key=key, value=value))

    async def _on_revoked(self, app: faust.App, revoked: Any, **kwargs: Any) -> None:
        async with self._batch_lock:  # a batch under way finishes first, with its changelog and local writes
            await self._flush_or_forget(read_again=False)
            self.ready.clear()
        for tp in revoked:
            if tp.topic == topics.EVENTS:
                self.projection.partitions.pop(tp.partition, None)
                self.gaps.forget(tp.partition)

    async def _on_assigned(self, app: faust.App, assigned: Any, **kwargs: Any) -> None:
        self._remember_member()
        if not any(tp.topic == topics.EVENTS for tp in assigned):
            await self.rebuild()  # no tables to recover: nothing else will call it

    def _remember_member(self) -> None:
        """For the next worker on this data dir, should this one be killed (streams/kafka/group.py)."""
        try:
            member_id = self.app.consumer._thread._ensure_consumer()._coordinator.member_id
        except Exception:  # noqa: BLE001 - Faust's consumer internals; without it a restart only waits longer
            return
        remember_member(self.settings.table_dir, self.settings.app_id, member_id)

    # -- the cluster watermark -------------------------------------------------------------

    async def _follow_watermarks(self) -> None:
        """Learn every worker's watermark: the time-based lead changes depend on the latest."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.bootstrap, enable_auto_commit=False, group_id=None)
        await consumer.start()
        try:
            tp = TopicPartition(topics.WATERMARKS, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            while True:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                marks = [int(m.value) for m in batch.get(tp, []) if m.value and m.value.isdigit()]
                if marks and self.ready.is_set():
                    async with self._batch_lock:  # the leads as the store has them, not halfway through a batch
                        changes = self.projection.learn_watermark(max(marks), self._view())
                        if changes:
                            await self._publish_changes(changes)
        finally:
            await consumer.stop()
