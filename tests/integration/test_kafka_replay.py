"""`journey replay --input kafka://...` against the embedded broker, and its end-offset bug."""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams import topics
from streams.produce import lead_key, prepare
from streams.settings import Settings
from tests.helpers import same_instants
from tests.integration.conftest import JOURNEY, produce, wait_for

pytestmark = pytest.mark.timeout(120)


def replay(url: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([JOURNEY, "replay", "--input", url, "--format", "json"], capture_output=True, timeout=60)


async def batched_produce(bootstrap: str, records: list[bytes]) -> int:
    """Publish as an ordinary Kafka producer would, many records per batch; returns the sum of end offsets."""
    await prepare(Settings(broker=f"kafka://{bootstrap}"))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=100)
    await producer.start()
    await asyncio.gather(*[await producer.send(topics.EVENTS, r, key=lead_key(r)) for r in records])
    await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    ends = await consumer.end_offsets([TopicPartition(topics.EVENTS, p) for p in range(8)])
    await consumer.stop()
    return sum(ends.values())


async def reported_end(bootstrap: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        return sum((await consumer.end_offsets([TopicPartition(topics.EVENTS, p) for p in range(8)])).values())
    finally:
        await consumer.stop()


class TestKafkaReplay:
    def test_replaying_the_live_topic_equals_the_expected_report(self, broker, golden_log, expected_report) -> None:
        produce(broker, golden_log)
        # Replay reads to the end the broker reports when it starts; wait until that end covers the log.
        wait_for(lambda: asyncio.run(reported_end(broker.url.removeprefix("kafka://"))) == len(golden_log), 30, "the broker to report every record")
        result = replay(f"{broker.url}/journey.events")
        assert result.returncode == 0, result.stderr
        assert same_instants(json.loads(result.stdout), expected_report)

    def test_the_embedded_broker_misreports_end_offsets_of_batched_records(self, broker, golden_log) -> None:
        """The bug the embedded profile works around: an ordinary batching producer's records end up
        past the end offsets the broker reports, so anything that reads "to the end" would stop short."""
        end_offsets = asyncio.run(batched_produce(broker.url.removeprefix("kafka://"), golden_log))
        assert end_offsets < len(golden_log)

    def test_journey_produce_sends_one_record_per_batch_so_end_offsets_are_right_on_the_embedded_broker(self, broker, golden_log) -> None:
        produce(broker, golden_log)
        assert asyncio.run(reported_end(broker.url.removeprefix("kafka://"))) == len(golden_log)

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
