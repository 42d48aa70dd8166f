"""The one wiring point: a Faust app built from Settings, with its topics, tables, agent and views."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from weakref import ref

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.streams import _current_event  # see _as_current
from faust.types import TP, EventT

from projections import Definitions
from schemas import Rejection
from schemas.platforms import SegmentEvents
from streams.kafka import topics
from streams.kafka.compacted import latest_values
from streams.kafka.deadletters import DeadLetter
from streams.kafka.errors import BrokerError
from streams.live.changes import LeadChange, read_spoken_under, spoken_under
from streams.live.cluster import Cluster, Peers
from streams.live.embedded import Profile
from streams.live.gaps import RESEEK_SECONDS, GapGuard
from streams.live.ingest import Ingest
from streams.live.metrics import WorkerMetrics
from streams.live.projection import BatchResult, LiveProjection, Record
from streams.live.tables import AcknowledgedTable
from streams.live.web import Api, register
from streams.settings import Settings

log = logging.getLogger("journey.worker")


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
            Table=AcknowledgedTable,  # counts changelog writes not yet acknowledged (streams/tables.py)
            **profile.faust_settings(),
        )
        raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
        self.events = self.app.topic(topics.EVENTS, partitions=settings.partitions, **raw)
        self.dlq = self.app.topic(topics.DLQ, partitions=1, **raw)
        self.changes = self.app.topic(topics.LEAD_CHANGES, partitions=settings.partitions, **raw)
        self.watermarks = self.app.topic(topics.WATERMARKS, partitions=1, **raw)
        self.spoken = self.app.topic(topics.CHANGES_DEFINITIONS, partitions=1, **raw)
        self.leads = self.app.Table(topics.LEADS_TABLE, partitions=settings.partitions, default=None, key_type=bytes, value_type=bytes)
        self._announced: int | None = None
        self.gaps = GapGuard(settings.bootstrap, topics.EVENTS, self._seek)
        self.metrics = WorkerMetrics(self.projection, lambda: self.gaps.seeks, self.highwater)
        self._wire(ingest_token, segment_events)

    def _wire(self, ingest_token: str | None, segment_events: SegmentEvents) -> None:
        app, settings = self.app, self.settings

        @app.agent(self.events, name="journey-project")
        async def project(stream: faust.StreamT) -> None:
            async for batch in stream.take_events(self.settings.batch_size, within=self.settings.batch_within):
                await self.process(batch)

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
            ingest=Ingest(ingest_token, open_without_token=settings.demo, publish=self._publish_events, segment_events=segment_events),
            metrics=self.metrics.render,
            read_token=None if settings.demo else read_token,  # demo mode never asks for a read token
        )
        register(app, api)

    def _own_url(self) -> str:
        return self.app.conf.canonical_url.human_repr()

    # -- the agent -------------------------------------------------------------------------

    async def process(self, batch: list[EventT]) -> None:
        """Apply a batch, then publish what it produced.

        Faust acks a taken batch even when the agent is cancelled halfway (a
        graceful stop), so every table write happens before the first await
        after the gap checks, and the publishing is shielded from cancellation.
        """
        if not self.ready.is_set():
            await self.ready.wait()  # the projection is rebuilt from the recovered tables first
        with self.metrics.batch_seconds.time():
            by_partition: dict[int, list[Record]] = defaultdict(list)
            last_event: dict[int, EventT] = {}
            for event in batch:
                message = event.message
                by_partition[message.partition].append(Record(message.offset, message.value or b""))
                last_event[message.partition] = event
            for partition, records in by_partition.items():
                usable = await self.gaps.contiguous(partition, self.projection.next_offset(partition), [r.offset for r in records])
                by_partition[partition] = records[:usable]
            result = BatchResult()
            before = self.projection.cluster_watermark
            leads = _TableAccess(self.leads)
            for partition, records in by_partition.items():
                if not records:
                    continue
                with _as_current(last_event[partition]):
                    self.projection.process(partition, records, leads, result)
                self.metrics.count(len(records), [Rejection(bad.reason).kind for bad in result.invalid if bad.partition == partition])
            self.projection.settle(result, before, leads)  # reads leads of every partition: outside _as_current
            await asyncio.shield(self._publish(result))

    async def _publish(self, result: BatchResult) -> None:
        """Hand dead letters and lead changes to the producer. Not awaiting the broker's acks is
        safe: Faust flushes the producer before it commits offsets (at-least-once)."""
        for bad in result.invalid:
            value, headers = DeadLetter.of(bad.reason, topics.EVENTS, bad.partition, bad.offset, bad.value).encode()
            await self.dlq.send(value=value, headers=headers)
        for change in result.changes:
            await self._send_change(change)
        await self._announce_watermark()

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

    async def _send_change(self, change: LeadChange) -> Any:
        key, value = change.encode()
        return await self.changes.send(key=key, value=value)

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
        active = {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topics.EVENTS}
        self.projection.rebuild(self.leads.items(), active)
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
        changes = self.projection.catch_up(self.leads.items(), behind, watermark)
        for partition, found in changes.items():
            old_digest = "unknown" if behind[partition] is None else behind[partition].digest
            log.info("partition %d: publishing %d lead changes, definitions %s -> %s", partition, len(found), old_digest, self.defs.digest)
            await asyncio.gather(*[await self._send_change(change) for change in found])
            await self._say_spoken_under(partition)
            log.info("partition %d: journey.lead-changes caught up to definitions %s", partition, self.defs.digest)

    async def _say_spoken_under(self, partition: int) -> None:
        key, value = spoken_under(partition, self.defs)
        await (await self.spoken.send(key=key, value=value))

    async def _on_revoked(self, app: faust.App, revoked: Any, **kwargs: Any) -> None:
        self.ready.clear()
        for tp in revoked:
            if tp.topic == topics.EVENTS:
                self.projection.partitions.pop(tp.partition, None)
                self.gaps.forget(tp.partition)

    async def _on_assigned(self, app: faust.App, assigned: Any, **kwargs: Any) -> None:
        if not any(tp.topic == topics.EVENTS for tp in assigned):
            await self.rebuild()  # no tables to recover: nothing else will call it

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
                    for change in self.projection.learn_watermark(max(marks), _TableAccess(self.leads)):
                        await (await self._send_change(change))
        finally:
            await consumer.stop()


class _TableAccess:
    def __init__(self, table: faust.Table) -> None:
        self._table = table

    def get(self, lead_id: str) -> bytes | None:
        return self._table.get(lead_id.encode())

    def put(self, lead_id: str, value: bytes) -> None:
        self._table[lead_id.encode()] = value


@contextmanager
def _as_current(event: EventT) -> Iterator[None]:
    """Make `event` Faust's current event while its partition's leads are written.

    Faust picks the changelog partition and the RocksDB partition store of a
    table write from the current event. A batch from take_events mixes
    partitions, so each partition's writes run with one of its own events.
    """
    token = _current_event.set(ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
