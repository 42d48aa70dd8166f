"""Prometheus metrics of a worker. Lead ids never appear in a label."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from projections import QUALIFICATIONS
from projections.live import LiveProjection

Highwater = Callable[[int], "int | None"]  # a journey.events partition's end offset as the consumer last saw it


class WorkerMetrics:
    def __init__(self, projection: LiveProjection, gap_seeks: Callable[[], int], highwater: Highwater) -> None:
        self.registry = CollectorRegistry()
        self.records = Counter("journey_records_processed", "Records this worker processed, by result", ["result"], registry=self.registry)
        self.invalid = Counter(
            "journey_invalid_records", "Invalid records this worker sent to the DLQ, by reason class (a field name or too_large, not_json, not_object)",
            ["reason"], registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "journey_batch_processing_seconds", "Time to project one batch of records",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5), registry=self.registry,
        )
        self.registry.register(_ProjectionCollector(projection, gap_seeks, highwater))

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

    def __init__(self, projection: LiveProjection, gap_seeks: Callable[[], int], highwater: Highwater) -> None:
        self.projection = projection
        self.gap_seeks = gap_seeks
        self.highwater = highwater

    def collect(self) -> Iterator[Metric]:
        projection = self.projection
        defs = projection.defs
        totals, counts = projection.totals()
        yield _gauge("journey_events", "Events in this worker's partitions, by result", "result", counts.as_dict())
        yield _gauge("journey_leads_by_stage", "Leads per pipeline stage (this worker's partitions)", "stage", dict(zip(defs.stages, totals.pipeline, strict=True)))
        mark = projection.cluster_watermark
        levels = dict(zip(QUALIFICATIONS, projection.qualification_at(mark), strict=True))
        yield _gauge("journey_leads_by_qualification", "Leads per qualification level (this worker's partitions)", "level", levels)
        yield _gauge("journey_funnel_reached", "Leads that reached each AIDA step (this worker's partitions)", "step", dict(zip(defs.steps, totals.funnel, strict=True)))
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
        if mark is not None:
            seconds = mark / 1e6
            watermark = GaugeMetricFamily("journey_watermark_seconds", "Latest event time known (Unix seconds)")
            watermark.add_metric([], seconds)
            yield watermark
            behind = GaugeMetricFamily("journey_watermark_lag_seconds", "Wall clock minus the watermark")
            behind.add_metric([], time.time() - seconds)
            yield behind


def _gauge(name: str, doc: str, label: str, values: dict[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[label])
    for key, value in values.items():
        family.add_metric([key], value)
    return family
