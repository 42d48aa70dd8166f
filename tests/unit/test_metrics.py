"""A worker's /metrics, scraped from `WorkerMetrics.render()` and read with prometheus_client's own parser (issue 30):
names and labels per Prometheus' conventions, the standard process metrics, and the ingest and rebalance counters."""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from projections import default_definitions
from projections.live import LiveProjection
from streams.live.metrics import WorkerMetrics


def scrape(metrics: WorkerMetrics) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """{sample name: {sorted labels: value}} of one scrape, parsed as Prometheus parses the text format."""
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


@pytest.fixture
def projection() -> LiveProjection:
    projection = LiveProjection(default_definitions())
    projection.rebuild([], {0, 3})  # owns partitions 0 and 3, no leads yet
    return projection


@pytest.fixture
def metrics(projection: LiveProjection) -> WorkerMetrics:
    return WorkerMetrics(projection, lambda: 2, lambda partition: {0: 10, 3: 0}[partition], topic_partitions=8)


class TestConventions:
    def test_the_watermark_is_a_timestamp_by_name(self, metrics: WorkerMetrics, projection: LiveProjection) -> None:
        assert "journey_watermark_timestamp_seconds" not in scrape(metrics)  # no watermark known yet: no sample
        projection.cluster_watermark = 1_700_000_000_500_000  # microseconds
        samples = scrape(metrics)
        assert samples["journey_watermark_timestamp_seconds"] == {(): 1_700_000_000.5}
        assert "journey_watermark_seconds" not in samples
        (behind,) = samples["journey_watermark_lag_seconds"].values()
        assert behind == pytest.approx(time.time() - 1_700_000_000.5, abs=60)

    def test_result_means_an_events_result_and_validity_a_processed_records(self, metrics: WorkerMetrics) -> None:
        metrics.count(5, ["occurred_at", "not_json"])
        samples = scrape(metrics)
        assert samples["journey_records_processed_total"] == {(("validity", "valid_or_duplicate"),): 3, (("validity", "invalid"),): 2}
        assert {dict(labels)["result"] for labels in samples["journey_events"]} == {"valid", "invalid", "duplicates"}
        assert samples["journey_invalid_records_total"] == {(("reason", "occurred_at"),): 1, (("reason", "not_json"),): 1}
        result_values = {dict(labels)["result"] for name, series in samples.items() for labels in series if "result" in dict(labels)}
        assert result_values == {"valid", "invalid", "duplicates"}, "the result label means one thing on every metric"

    def test_processed_records_are_exported_at_zero_before_the_first_so_increase_sees_it(self, metrics: WorkerMetrics) -> None:
        assert scrape(metrics)["journey_records_processed_total"] == {(("validity", "valid_or_duplicate"),): 0, (("validity", "invalid"),): 0}

    def test_every_counter_ends_in_total(self, metrics: WorkerMetrics) -> None:
        metrics.count(1, ["type"])
        metrics.ingest_request("/api/events", 202)
        body, _ = metrics.render()
        for family in text_string_to_metric_families(body.decode()):
            if family.type == "counter":
                assert all(s.name.endswith(("_total", "_created")) for s in family.samples), family.name


class TestStandardMetrics:
    def test_process_and_python_metrics_describe_this_process(self, metrics: WorkerMetrics) -> None:
        samples = scrape(metrics)
        (started,) = samples["process_start_time_seconds"].values()
        assert time.time() - 7 * 86400 < started <= time.time()
        (rss,) = samples["process_resident_memory_bytes"].values()
        assert rss > 10 * 2**20
        assert "process_cpu_seconds_total" in samples and "process_open_fds" in samples
        assert "python_info" in samples and "python_gc_objects_collected_total" in samples

    def test_each_worker_has_its_own_registry(self, projection: LiveProjection) -> None:
        one = WorkerMetrics(projection, lambda: 0, lambda partition: None)
        two = WorkerMetrics(projection, lambda: 0, lambda partition: None)
        one.rebalance()
        assert scrape(one)["journey_rebalances_total"] == {(): 1} and scrape(two)["journey_rebalances_total"] == {(): 0}
        assert "process_resident_memory_bytes" in scrape(one) and "process_resident_memory_bytes" in scrape(two)


class TestIngestAndRebalances:
    def test_ingest_requests_are_counted_by_endpoint_and_status(self, metrics: WorkerMetrics) -> None:
        assert "journey_ingest_requests_total" not in scrape(metrics)
        for endpoint, status in [("/api/events", 202), ("/api/events", 202), ("/api/events", 401), ("/api/ingest/segment", 400)]:
            metrics.ingest_request(endpoint, status)
        assert scrape(metrics)["journey_ingest_requests_total"] == {
            (("endpoint", "/api/events"), ("status", "202")): 2,
            (("endpoint", "/api/events"), ("status", "401")): 1,
            (("endpoint", "/api/ingest/segment"), ("status", "400")): 1,
        }

    def test_rebalances_count_from_zero(self, metrics: WorkerMetrics) -> None:
        assert scrape(metrics)["journey_rebalances_total"] == {(): 0}
        metrics.rebalance()
        metrics.rebalance()
        assert scrape(metrics)["journey_rebalances_total"] == {(): 2}

    def test_poison_records_count_from_zero(self, metrics: WorkerMetrics) -> None:
        assert scrape(metrics)["journey_poison_records_total"] == {(): 0}
        metrics.poison_record()
        assert scrape(metrics)["journey_poison_records_total"] == {(): 1}


class TestPartitions:
    def test_owned_partitions_their_lag_and_the_topics_count(self, metrics: WorkerMetrics) -> None:
        samples = scrape(metrics)
        assert samples["journey_partitions_owned"] == {(): 2}
        assert samples["journey_topic_partitions"] == {(): 8}
        assert samples["journey_consumer_lag"] == {(("partition", "0"),): 10, (("partition", "3"),): 0}
        assert samples["journey_offset_gaps_reread_total"] == {(): 2}

    def test_the_topics_count_is_left_out_when_not_given(self, projection: LiveProjection) -> None:
        assert "journey_topic_partitions" not in scrape(WorkerMetrics(projection, lambda: 0, lambda partition: None))


class TestVelocityGauges:
    def test_persons_waiting_and_moved_on_per_stage_with_no_person_label(self) -> None:
        # SPEC §10 per stage, counts that add over workers; no lead id in any label
        from projections.live import BatchResult
        from tests.helpers import raw

        projection = LiveProjection(default_definitions())

        class Table(dict):
            def put(self, key: str, value: bytes) -> None:
                self[key] = value

        table = Table()
        records = [raw(lead="L1", eid="a", kind="ad_seen", at="2026-09-01T10:00:00Z"), raw(lead="L1", eid="b", kind="content_read", at="2026-09-03T10:00:00Z"),
                   raw(lead="L2", eid="c", kind="ad_seen", at="2026-09-20T10:00:00Z")]
        projection.process(0, list(enumerate(records)), table, BatchResult())
        samples = scrape(WorkerMetrics(projection, lambda: 0, lambda partition: None))
        assert samples["journey_stage_waiting"][(("stage", "explore"),)] == 1 and samples["journey_stage_waiting"][(("stage", "research"),)] == 1
        assert samples["journey_stage_moved_on"][(("stage", "explore"),)] == 1
        assert samples["journey_stage_waiting_stale"][(("stage", "research"),)] == 1  # 17 days at the watermark of day 20
        assert not any("L1" in str(labels) or "L2" in str(labels) for family in samples.values() for labels in family)
