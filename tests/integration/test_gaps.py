"""The guard against skipped offsets, against the real embedded broker."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from streams.kafka import topics
from streams.kafka.produce import prepare
from streams.live.gaps import GapGuard
from streams.settings import Settings


async def _ten_records(bootstrap: str) -> None:
    """Offsets 0 to 9 of partition 3."""
    prepare(Settings(broker=f"kafka://{bootstrap}"))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=1)
    await producer.start()
    for i in range(10):
        await producer.send_and_wait(topics.EVENTS, b"%d" % i, partition=3)
    await producer.stop()


def _recording_guard(bootstrap: str, reseek_after: float) -> tuple[GapGuard, list[tuple[int, int]]]:
    seeks: list[tuple[int, int]] = []

    async def seek(partition: int, offset: int) -> None:
        seeks.append((partition, offset))

    return GapGuard(bootstrap, topics.EVENTS, seek, reseek_after=reseek_after), seeks


async def _scenario(bootstrap: str, reseek_after: float = 60.0) -> tuple[list[int], list[tuple[int, int]]]:
    await _ten_records(bootstrap)
    guard, seeks = _recording_guard(bootstrap, reseek_after)
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

    def test_a_hole_nothing_arrives_for_is_sought_again_until_filled_or_given_away(self, broker) -> None:
        """The records that overtook the seek were the partition's last: no later record comes to
        trigger the seek again, so the worker's timer does."""

        async def scenario() -> list[list[tuple[int, int]]]:
            bootstrap = broker.url.removeprefix("kafka://")
            await _ten_records(bootstrap)
            guard, seeks = _recording_guard(bootstrap, reseek_after=0.2)
            steps = []
            try:
                assert await guard.contiguous(3, 0, [0, 1, 2, 5, 6]) == 3
                await guard.reseek_waiting()  # too soon after the seek
                steps.append(list(seeks))
                await asyncio.sleep(0.25)
                await guard.reseek_waiting()
                steps.append(list(seeks))
                assert await guard.contiguous(3, 3, [3, 4]) == 2  # the hole is filled
                await asyncio.sleep(0.25)
                await guard.reseek_waiting()
                steps.append(list(seeks))
                assert await guard.contiguous(3, 5, [7]) == 0  # a new hole at 5 ...
                guard.forget(3)  # ... and the partition goes to another worker
                await asyncio.sleep(0.25)
                await guard.reseek_waiting()
                steps.append(list(seeks))
            finally:
                await guard.close()
            return steps

        first, again, filled, given_away = asyncio.run(scenario())
        assert first == [(3, 3)]
        assert again == [(3, 3), (3, 3)]
        assert filled == again
        assert given_away == [*again, (3, 5)]
