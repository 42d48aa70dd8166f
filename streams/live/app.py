"""The one wiring point: a Faust app built from Settings, and each part of the worker given
only what it uses.

- `BatchPipeline` (pipeline.py): the hot path, each fetch folded, sent and written locally;
- `Rebalancing` (rebalance.py) and `CatchUp` (catchup.py): partitions coming and going, and
  the change stream caught up to this worker's definitions;
- `Watermarks` (watermarks.py): this worker's watermark announced, every worker's followed;
- `Ingest` (ingest.py): HTTP ingest, publishing to journey.events;
- `Redefinitions` and `Admin` (redefine.py, admin.py): SPEC §11's definitions on journey.definitions,
  followed and switched to without a restart, and the admin endpoints that record them;
- `Cluster` and `Api` (cluster.py, web.py): the HTTP face.
Only this module and worker.py see the whole Faust app.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from pathlib import Path

import faust
from faust.types import TP

from projections import Definitions
from projections.live import LiveProjection
from schemas.platforms import SegmentEvents
from streams.kafka import topics
from streams.kafka.batches import BatchProducer
from streams.kafka.definitions import Recorded
from streams.kafka.group import remember_member
from streams.live.admin import Admin
from streams.live.catchup import CatchUp
from streams.live.cluster import Cluster, Peers
from streams.live.commits import INTERVAL as COMMIT_SECONDS
from streams.live.commits import OffsetCommits
from streams.live.embedded import Profile
from streams.live.gaps import RESEEK_SECONDS, GapGuard
from streams.live.ingest import Ingest
from streams.live.internals import (
    BatchConsumer,
    PromptTableManager,
    changelog_offset_key,
    commit_offsets,
    kafka_producer,
    member_id,
    partition_path,
    share_rocksdb_memory,
)
from streams.live.metrics import WorkerMetrics
from streams.live.pipeline import BatchPipeline, Outlets
from streams.live.readiness import Readiness
from streams.live.rebalance import Rebalancing
from streams.live.redefine import Redefinitions
from streams.live.resync import LocalTables, resync
from streams.live.store import LeadStore
from streams.live.watermarks import Watermarks
from streams.live.web import Api, register
from streams.settings import Settings

log = logging.getLogger("journey.worker")

PRODUCER_BATCH_BYTES = 512 * 1024  # under Faust's default producer_max_request_size (1,000,000)
MIB = 1 << 20
READINESS_SECONDS = 1.0  # how soon after its rebuild a worker reads the end offsets it must reach to be ready
RAW = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}


def faust_app(settings: Settings, profile: Profile) -> faust.App:
    return faust.App(
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
        table_standby_replicas=settings.standby_replicas,  # standby copies are Faust's; journey writes only actives
        consumer_auto_offset_reset="earliest",
        autodiscover=False,
        web_enabled=True,
        broker_max_poll_records=settings.batch_size,
        # a batch's changelog records go out as few produce requests as possible (streams/kafka/batches.py)
        producer_max_batch_size=PRODUCER_BATCH_BYTES,
        TableManager=PromptTableManager,  # the lead table is declared before Faust starts: no second of grace
        **profile.faust_settings(),
    )


class JourneyApp:
    """The Faust app and the parts of the worker, wired."""

    def __init__(
        self, settings: Settings, defs: Definitions, profile: Profile, ingest_token: str | None, segment_events: SegmentEvents,
        *, file_defs: Definitions, recorded: Recorded, shadow: Definitions | None,
    ) -> None:
        """`defs`: the effective definitions (SPEC §11), `file_defs` the worker's own file's, `recorded`
        what journey.definitions held at start and `shadow` the candidate counted beside them."""
        profile.patch_faust(settings.bootstrap)
        self.settings = settings
        self.app = app = faust_app(settings, profile)
        # acks=False: its records never reach Faust's acking (streams/live/internals.py), so Faust's
        # livelock check must not wait for acks and commits of it and log a stalled stream
        self.events = app.topic(topics.EVENTS, partitions=settings.partitions, acks=False, **RAW)
        self.leads = app.Table(topics.LEADS_TABLE, partitions=settings.partitions, default=None, key_type=bytes, value_type=bytes)
        rocksdb = share_rocksdb_memory(self.leads, settings.rocksdb_cache_mb * MIB, settings.rocksdb_write_buffer_mb * MIB)
        identity = topics.identity_topic(settings.app_id)
        self.identity = app.topic(identity, partitions=settings.partitions, acks=False, **RAW)  # SPEC §9's messages, as journey.events
        projection = LiveProjection(defs, shadow=shadow)
        self.gaps = {topic: GapGuard(settings.bootstrap, topic, functools.partial(self._seek, topic)) for topic in (topics.EVENTS, identity)}
        self.metrics = WorkerMetrics(projection, lambda: sum(gaps.seeks for gaps in self.gaps.values()), self._highwater, topic_partitions=settings.partitions)
        if rocksdb is not None:
            self.metrics.watch_rocksdb(rocksdb.cache, rocksdb.write_buffers, settings.rocksdb_cache_mb * MIB)
        self._producer: BatchProducer | None = None
        self.commits = OffsetCommits(lambda offsets: commit_offsets(app, offsets))
        outlets = Outlets(self.producer, self.leads.changelog_topic.get_topic_name(), identity, self._seek, self._announce, self.commits.note)
        self.pipeline = BatchPipeline(projection, LeadStore(self.leads), self.gaps, self.metrics, outlets)
        self.watermarks = Watermarks(settings.bootstrap, app.topic(topics.WATERMARKS, partitions=1, **RAW), self._own_url, self.pipeline, self.pipeline.publish_changes)
        catch_up = CatchUp(
            settings.bootstrap, profile.embedded, projection, self.pipeline.store,
            app.topic(topics.CHANGES_DEFINITIONS, partitions=1, **RAW), self.pipeline.publish_changes,
        )
        self.redefinitions = Redefinitions(settings.bootstrap, profile.embedded, file_defs, self.pipeline, catch_up, recorded)
        self.admin = Admin(settings.admin_secret(), settings.bootstrap, profile.embedded, self.redefinitions)
        self.readiness = Readiness(projection, self.pipeline.ready, self._end_offsets, self.pipeline.next_offset)
        self.rebalancing = Rebalancing(
            self.pipeline, catch_up, list(self.gaps.values()), app.assignor.assigned_actives, self._joined, self.readiness, self.commits,
        )
        self._wire(ingest_token, segment_events)

    def _wire(self, ingest_token: str | None, segment_events: SegmentEvents) -> None:
        app, settings, pipeline, rebalancing = self.app, self.settings, self.pipeline, self.rebalancing
        # subscribed, so the assignor hands out their partitions, partition i of both to the same worker
        # (Faust's assignor co-partitions topics of one partition count); no agent reads them
        app.topics.add(self.events)
        app.topics.add(self.identity)
        # Faust's own consumer, with journey.events delivered a fetch at a time to the pipeline
        app.transport.Consumer = type("JourneyConsumer", (BatchConsumer,), {"sink": pipeline})  # type: ignore[misc]
        self.leads.on_recover(rebalancing.rebuild)
        app.on_partitions_revoked.connect(lambda sender, revoked, **kwargs: rebalancing.revoked(revoked))
        app.on_partitions_assigned.connect(lambda sender, assigned, **kwargs: rebalancing.assigned(assigned))
        app.task(self.watermarks.follow)
        app.task(self.redefinitions.follow)  # SPEC §11: journey.definitions, switched to without a restart
        app.timer(RESEEK_SECONDS)(self._reseek_waiting)
        app.timer(READINESS_SECONDS)(self.readiness.tick)
        app.timer(COMMIT_SECONDS)(self.commits.tick)
        read_token = settings.read_secret()  # JOURNEY_READ_TOKEN, else the file JOURNEY_READ_TOKEN_FILE names
        peers = Peers(
            own_url=self._own_url,
            urls=lambda: {str(url) for url in app.assignor.tables_metadata()},
            http=lambda: app.http_client,
            read_token=read_token,
            ready=pipeline.ready,
            owner_url=lambda key: str(app.router.key_store(self.leads.name, key)),
        )
        register(app, Api(
            cluster=Cluster(pipeline.projection, peers, settings.partitions),
            leads=self.leads,
            lead=pipeline.lead,
            ingest=Ingest(ingest_token, open_without_token=settings.demo, publish=self._publish_events, segment_events=segment_events, timeout=settings.ingest_timeout),
            metrics=self.metrics.render,
            ingest_answered=self.metrics.ingest_request,
            readiness=self.readiness.reason,
            read_token=None if settings.demo else read_token,  # demo mode never asks for a read token
            admin=self.admin,
        ))

    def resync(self, embedded: bool) -> None:
        """Before the worker starts: wipe the local state the broker no longer backs (streams/live/resync.py),
        and say so once logging is set up."""
        path = partition_path(self.leads)
        if path is None:
            return  # the memory store keeps nothing across a restart
        tables = LocalTables(
            self.settings.table_dir, Path(self.app.conf.tabledir), path, changelog_offset_key(self.leads.data),
            self.leads.changelog_topic.get_topic_name(), self.identity.get_topic_name(), self.settings.partitions,
        )
        line = resync(tables, self.settings.bootstrap, embedded)
        if line is not None:
            async def say() -> None:
                log.warning("%s", line)

            self.app.task(say)

    def producer(self) -> BatchProducer:
        if self._producer is None:
            self._producer = BatchProducer(kafka_producer(self.app))
        return self._producer

    def _own_url(self) -> str:
        return self.app.conf.canonical_url.human_repr()

    async def _announce(self) -> None:
        await self.watermarks.announce()

    async def _seek(self, topic: str, partition: int, offset: int) -> None:
        await self.app.consumer.seek(TP(topic, partition), offset)

    async def _end_offsets(self, partitions: list[int]) -> dict[tuple[str, int], int]:
        """The end offsets of these partitions of the topics the pipeline reads, from the broker
        (corrected for the embedded one)."""
        if not partitions:
            return {}
        ends = await self.app.consumer.highwaters(*(TP(topic, p) for topic in self.gaps for p in partitions))
        return {(tp.topic, tp.partition): end for tp, end in ends.items()}

    def _highwater(self, partition: int) -> int | None:
        """The end offset of a journey.events partition as the consumer last saw it."""
        try:
            return self.app.consumer.highwater(TP(topics.EVENTS, partition))
        except Exception:  # noqa: BLE001 - not fetched yet, or the consumer is rebalancing
            return None

    async def _reseek_waiting(self) -> None:
        if not self.pipeline.ready.is_set():  # not while tables recover: the partitions may be changing hands
            return
        try:
            for gaps in self.gaps.values():
                await gaps.reseek_waiting()
        except Exception as exc:  # noqa: BLE001 - a rebalance under way; the next tick tries again
            log.warning("seeking back to a gap failed (%s: %s); trying again", type(exc).__name__, exc)

    async def _publish_events(self, records: list[tuple[bytes, bytes]]) -> None:
        """HTTP ingest: publish to journey.events and wait until the broker has acknowledged each."""
        pending = [await self.events.send(key=key, value=value) for key, value in records]
        await asyncio.gather(*pending)

    def _joined(self) -> None:
        """At every assignment: counted (journey_rebalances_total), and this worker's group member id
        remembered for the next worker on this data dir, should this one be killed (streams/kafka/group.py)."""
        self.metrics.rebalance()
        member = member_id(self.app)
        if member:
            remember_member(self.settings.table_dir, self.settings.app_id, member)
