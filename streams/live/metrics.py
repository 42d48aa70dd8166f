"""Prometheus metrics of a worker. Lead ids never appear in a label.

Names and labels follow Prometheus' conventions: counters end in `_total`, a point in time
is `..._timestamp_seconds`, and a label means one thing on every metric (`result` is an
event's result: valid, invalid, duplicates; `validity` is a processed record's). The
registry is the worker's own, so the standard `process_*` and `python_*` metrics are
registered on it explicitly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from projections import QUALIFICATIONS
from projections.live import LiveProjection
from projections.report import Aggregates

Highwater = Callable[[int], "int | None"]  # a journey.events partition's end offset as the consumer last saw it


class WorkerMetrics:
    def __init__(self, projection: LiveProjection, gap_seeks: Callable[[], int], highwater: Highwater, *, topic_partitions: int | None = None) -> None:
        """`topic_partitions`: the partition count of journey.events (the `partitions` setting), exported as
        `journey_topic_partitions` so that an alert can tell partitions nobody owns."""
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # process_* (memory, CPU, start time, file descriptors)
        PlatformCollector(registry=self.registry)  # python_info
        GCCollector(registry=self.registry)  # python_gc_*
        self.records = Counter(
            "journey_records_processed", "Records of journey.events this worker processed, by validity (valid_or_duplicate, invalid)",
            ["validity"], registry=self.registry,
        )
        for validity in ("valid_or_duplicate", "invalid"):  # exported from the start, at 0, so that increase() sees the first
            self.records.labels(validity)
        self.invalid = Counter(
            "journey_invalid_records", "Invalid records this worker sent to the DLQ, by reason class (a field name or too_large, not_json, not_object)",
            ["reason"], registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "journey_batch_processing_seconds", "Time to project one batch of records",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5), registry=self.registry,
        )
        self.ingest_requests = Counter(
            "journey_ingest_requests", "HTTP ingest requests answered, by endpoint (the route, e.g. /api/events) and status code",
            ["endpoint", "status"], registry=self.registry,
        )
        self.rebalances = Counter("journey_rebalances", "Partition assignments this worker received (one per rebalance)", registry=self.registry)
        self.poison = Counter(
            "journey_poison_records", "Valid records the fold raised on (a bug): sent to the DLQ as internal and counted invalid", registry=self.registry,
        )
        self.unreadable = Counter(
            "journey_identity_messages_unreadable", "Identity messages this worker could not read and passed over (another journey version, or damage)",
            registry=self.registry,
        )
        self.registry.register(_ProjectionCollector(projection, gap_seeks, highwater, topic_partitions))

    def watch_rocksdb(self, cache: Any, write_buffers: Any, cache_bytes: int) -> None:
        """The RocksDB block cache and write-buffer budget all of this worker's partitions share
        (rocksdict's Cache and WriteBufferManager: `get_usage()`, `get_buffer_size()`)."""
        self.registry.register(_RocksCollector(cache, write_buffers, cache_bytes))

    def ingest_request(self, endpoint: str, status: int) -> None:
        """One answered ingest request. `endpoint` is the route, never the raw path: labels must stay few."""
        self.ingest_requests.labels(endpoint, str(status)).inc()

    def unreadable_identity(self) -> None:
        self.unreadable.inc()

    def rebalance(self) -> None:
        """This worker was given its (new) partitions."""
        self.rebalances.inc()

    def poison_record(self) -> None:
        """The fold raised on a record, which went to the DLQ (streams/live/poison.py)."""
        self.poison.inc()

    def count(self, records: int, invalid: list[str]) -> None:
        """Records of one partition's batch, and the reason classes of those that were invalid."""
        self.records.labels("valid_or_duplicate").inc(records - len(invalid))
        self.records.labels("invalid").inc(len(invalid))
        for kind in invalid:
            self.invalid.labels(kind).inc()

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _ProjectionCollector:
    """Reads the projection of this worker's partitions at scrape time, so processing pays nothing."""

    def __init__(self, projection: LiveProjection, gap_seeks: Callable[[], int], highwater: Highwater, topic_partitions: int | None) -> None:
        self.projection = projection
        self.gap_seeks = gap_seeks
        self.highwater = highwater
        self.topic_partitions = topic_partitions

    def collect(self) -> Iterator[Metric]:
        projection = self.projection
        defs = projection.defs
        totals, counts, _ = projection.totals()
        yield _gauge("journey_events", "Events in this worker's partitions, by result", "result", counts.as_dict())
        yield _gauge("journey_leads_by_stage", "Leads per pipeline stage (this worker's partitions)", "stage", dict(zip(defs.stages, totals.pipeline, strict=True)))
        mark = projection.cluster_watermark
        levels = dict(zip(QUALIFICATIONS, projection.qualification_at(mark), strict=True))
        yield _gauge("journey_leads_by_qualification", "Leads per qualification level (this worker's partitions)", "level", levels)
        yield _gauge("journey_funnel_reached", "Leads that reached each AIDA step (this worker's partitions)", "step", dict(zip(defs.steps, totals.funnel, strict=True)))
        yield from _velocity(projection, totals, mark)
        seeks = CounterMetricFamily("journey_offset_gaps_reread", "Times skipped offsets were detected and read again")
        seeks.add_metric([], self.gap_seeks())
        yield seeks
        lag = GaugeMetricFamily("journey_consumer_lag", "Records of journey.events not yet applied, per owned partition", labels=["partition"])
        for partition, part in sorted(projection.partitions.items()):
            highwater = self.highwater(partition)
            if highwater is not None:
                lag.add_metric([str(partition)], max(0, highwater - part.progress.through - 1))
        yield lag
        owned = GaugeMetricFamily("journey_partitions_owned", "Partitions of journey.events this worker owns")
        owned.add_metric([], len(projection.partitions))
        yield owned
        if self.topic_partitions is not None:
            total = GaugeMetricFamily("journey_topic_partitions", "Partitions of journey.events (the partitions setting): the sum of journey_partitions_owned over workers when all are owned")
            total.add_metric([], self.topic_partitions)
            yield total
        if mark is not None:
            seconds = mark / 1e6
            watermark = GaugeMetricFamily("journey_watermark_timestamp_seconds", "Latest event time known to the cluster (Unix time, seconds)")
            watermark.add_metric([], seconds)
            yield watermark
            behind = GaugeMetricFamily("journey_watermark_lag_seconds", "Wall clock minus the watermark")
            behind.add_metric([], time.time() - seconds)
            yield behind


def _velocity(projection: LiveProjection, totals: Aggregates, mark: int | None) -> Iterator[Metric]:
    """SPEC §10 per stage, as counts that add over workers (a median would not): persons waiting in it,
    those that moved on, and those waiting at least sal_stale_after_days at the cluster's watermark."""
    stages, speed = projection.defs.stages, totals.velocity
    waiting = {stage: entered - moved for stage, entered, moved in zip(stages, speed.entered, speed.moved_on, strict=True)}
    yield _gauge("journey_stage_waiting", "Persons waiting in each pipeline stage: entered it, no later one yet (this worker's partitions)", "stage", waiting)
    yield _gauge("journey_stage_moved_on", "Persons that moved on from each pipeline stage (this worker's partitions)", "stage", dict(zip(stages, speed.moved_on, strict=True)))
    stale = {stage: counts["stale"] for stage, counts in zip(stages, projection.stage_counts(mark), strict=True)}
    yield _gauge("journey_stage_waiting_stale", "Persons waiting in each stage for at least sal_stale_after_days (this worker's partitions)", "stage", stale)


class _RocksCollector:
    def __init__(self, cache: Any, write_buffers: Any, cache_bytes: int) -> None:
        self.cache, self.write_buffers, self.cache_bytes = cache, write_buffers, cache_bytes

    def collect(self) -> Iterator[Metric]:
        for name, doc, value in (
            ("journey_rocksdb_block_cache_capacity_bytes", "RocksDB block cache shared by this worker's partitions (JOURNEY_ROCKSDB_CACHE_MB)", self.cache_bytes),
            ("journey_rocksdb_block_cache_usage_bytes", "Bytes in the shared RocksDB block cache", self.cache.get_usage()),
            ("journey_rocksdb_write_buffer_limit_bytes", "RocksDB memtable budget shared by this worker's partitions (JOURNEY_ROCKSDB_WRITE_BUFFER_MB)", self.write_buffers.get_buffer_size()),
            ("journey_rocksdb_write_buffer_usage_bytes", "Bytes in RocksDB memtables, all partitions", self.write_buffers.get_usage()),
        ):
            gauge = GaugeMetricFamily(name, doc)
            gauge.add_metric([], value)
            yield gauge


def _gauge(name: str, doc: str, label: str, values: dict[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[label])
    for key, value in values.items():
        family.add_metric([key], value)
    return family
