"""The guard against skipped offsets, against the real embedded broker."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from streams import topics
from streams.gaps import GapGuard
from streams.produce import prepare
from streams.settings import Settings


async def _scenario(bootstrap: str, reseek_after: float = 60.0) -> tuple[list[int], list[tuple[int, int]]]:
    await prepare(Settings(broker=f"kafka://{bootstrap}"))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=1)
    await producer.start()
    for i in range(10):
        await producer.send_and_wait(topics.EVENTS, b"%d" % i, partition=3)
    await producer.stop()
    seeks: list[tuple[int, int]] = []

    async def seek(partition: int, offset: int) -> None:
        seeks.append((partition, offset))

    guard = GapGuard(bootstrap, topics.EVENTS, seek, reseek_after=reseek_after)
    try:
        answers = [
            await guard.contiguous(3, 0, [0, 1, 2, 5, 6]),  # 3 and 4 exist on the broker: go back
            await guard.contiguous(3, 3, [6, 7]),  # still waiting for 3
            await guard.contiguous(3, 3, [3, 4, 5, 6, 7]),  # the re-read arrives
            await guard.contiguous(3, 8, [8, 9]),
            await guard.contiguous(3, 10, [12]),  # the broker shows nothing from 10 on: not known to be a gap, read again
        ]
    finally:
        await guard.close()
    return answers, seeks


class TestGapGuard:
    def test_skipped_offsets_are_read_again_and_an_unconfirmed_gap_is_never_skipped(self, broker) -> None:
        answers, seeks = asyncio.run(_scenario(broker.url.removeprefix("kafka://")))
        assert answers == [3, 0, 5, 2, 0]
        assert seeks == [(3, 3), (3, 10)]

    def test_records_past_a_hole_that_keep_coming_make_it_seek_again(self, broker) -> None:
        """Faust can overtake a seek with records it fetched before; the re-read ones it then
        drops as already seen. Later records still arriving mean: seek again."""
        answers, seeks = asyncio.run(_scenario(broker.url.removeprefix("kafka://"), reseek_after=0.0))
        assert answers == [3, 0, 5, 2, 0]
        assert seeks == [(3, 3), (3, 3), (3, 10)]
