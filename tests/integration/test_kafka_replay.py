"""`journey replay --input kafka://...` against the embedded broker, and its end-offset bug."""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.kafka import tansu, topics
from streams.kafka.produce import owner_key, prepare
from streams.settings import Settings
from tests.helpers import same_instants
from tests.integration.conftest import JOURNEY, end_offset_sums, produce, wait_for

pytestmark = pytest.mark.timeout(120)


def replay(url: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([JOURNEY, "replay", "--input", url, "--format", "json"], capture_output=True, timeout=60)


async def batched_produce(bootstrap: str, records: list[bytes]) -> None:
    """Publish as an ordinary Kafka producer would, many records per batch."""
    prepare(Settings(broker=f"kafka://{bootstrap}"))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=100)
    await producer.start()
    await asyncio.gather(*[await producer.send(topics.EVENTS, r, key=owner_key(r)) for r in records])
    await producer.stop()


class TestKafkaReplay:
    def test_replaying_the_live_topic_equals_the_expected_report(self, broker, golden_log, expected_report) -> None:
        produce(broker, golden_log)
        # Replay reads to the end the broker has when it starts; wait until that end covers the log.
        wait_for(lambda: end_offset_sums(broker, topics.EVENTS, 8)[1] == len(golden_log), 30, "the broker to hold every record")
        result = replay(f"{broker.url}/journey.events")
        assert result.returncode == 0, result.stderr
        assert same_instants(json.loads(result.stdout), expected_report)

    def test_the_embedded_broker_misreports_end_offsets_of_batched_records_and_journey_corrects_them(self, broker, golden_log) -> None:
        """The bug the embedded profile works around: an ordinary batching producer's records end up
        past the end offsets the broker reports, so anything that trusted them would stop short."""
        asyncio.run(batched_produce(broker.url.removeprefix("kafka://"), golden_log))
        reported, corrected = end_offset_sums(broker, topics.EVENTS, 8)
        assert reported < len(golden_log) == corrected

    def test_the_correction_leaves_empty_partitions_and_right_answers_alone(self, broker) -> None:
        bootstrap = broker.url.removeprefix("kafka://")

        async def scenario() -> dict[TopicPartition, int]:
            prepare(Settings(broker=broker.url))
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=1)  # one record per batch
            await producer.start()
            for i in range(5):
                await producer.send_and_wait(topics.EVENTS, b"%d" % i, partition=1)
            await producer.stop()
            return await tansu.corrected_end_offsets(bootstrap, {empty: 0, exact: 5})

        empty, exact = TopicPartition(topics.EVENTS, 0), TopicPartition(topics.EVENTS, 1)
        assert asyncio.run(scenario()) == {empty: 0, exact: 5}

    def test_a_topic_written_in_batches_replays_whole_from_the_embedded_broker(self, broker, golden_log, expected_report) -> None:
        asyncio.run(batched_produce(broker.url.removeprefix("kafka://"), golden_log))
        result = replay(f"{broker.url}/journey.events")
        assert result.returncode == 0, result.stderr
        assert same_instants(json.loads(result.stdout), expected_report)

    def test_an_unknown_topic_is_one_line_and_is_not_created(self, broker) -> None:
        result = replay(f"{broker.url}/no.such.topic")
        assert result.returncode == 1 and result.stderr.decode().strip().endswith("no such topic")

        async def listed() -> set[str]:
            admin = AIOKafkaAdminClient(bootstrap_servers=broker.url.removeprefix("kafka://"))
            await admin.start()
            names = set(await admin.list_topics())
            await admin.close()
            return names

        assert "no.such.topic" not in asyncio.run(listed())

    def test_an_unreachable_broker_is_one_line(self) -> None:
        result = replay("kafka://127.0.0.1:1/journey.events")
        lines = result.stderr.decode().strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1 and "cannot reach the broker" in lines[0]


class TestEmitter:
    def test_emitted_events_are_keyed_like_every_producer_and_projected_and_a_bad_one_is_refused_unsent(self, broker, start_worker) -> None:
        from projections.routing import kafka_partition
        from streams.kafka.emitter import Emitter, InvalidEvent

        prepare(Settings(broker=broker.url))
        events = [{"event_id": f"e{i}", "lead_id": f"lead-{i % 7}", "type": "content_read", "occurred_at": f"2026-09-01T10:{i:02d}:00Z"} for i in range(30)]
        with Emitter(broker.url) as emitter:
            deliveries = [emitter.emit(event) for event in events]
            with pytest.raises(InvalidEvent, match="occurred_at"):
                emitter.emit({"event_id": "bad", "lead_id": "lead-1", "type": "content_read", "occurred_at": "yesterday"})
        assert [d.partition for d in deliveries] == [kafka_partition(e["lead_id"].encode(), 8) for e in events]
        worker = start_worker()
        report = wait_for(lambda: (r := worker.get("/api/report"))[0] == 200 and sum(r[1]["events"].values()) == 30 and r[1], 60, "30 events")
        assert report["events"] == {"valid": 30, "invalid": 0, "duplicates": 0} and report["leads"] == 7
