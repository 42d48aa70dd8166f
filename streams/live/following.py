"""A worker task that follows a topic for as long as the worker runs, retried with backoff.

Faust ends a worker whose task raises, so a broker error (or anything else) while following
journey.watermarks or journey.definitions is logged and the follower starts again, waiting
longer after each failure in a row; cancellation (the worker stopping) passes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka.errors import KafkaError

log = logging.getLogger("journey.worker")

BACKOFF_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0)

WentWell = Callable[[], None]  # called by the follower after each round that went well: the next failure waits the least again


async def follow_forever(topic: str, follow: Callable[[WentWell], Awaitable[None]]) -> None:
    failures = 0

    def went_well() -> None:
        nonlocal failures
        failures = 0

    while True:
        try:
            await follow(went_well)
        except Exception as exc:  # noqa: BLE001 - any exception here would end the worker; cancellation passes
            delay = BACKOFF_SECONDS[min(failures, len(BACKOFF_SECONDS) - 1)]
            failures += 1
            what = f"{type(exc).__name__}: {exc}" if isinstance(exc, KafkaError) else type(exc).__name__  # no lead id above DEBUG
            log.warning("following %s failed (%s); trying again in %.1f s", topic, what, delay)
            log.debug("following %s failed", topic, exc_info=exc)
            await asyncio.sleep(delay)
