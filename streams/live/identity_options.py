"""The identity options a group's state is built under (SPEC §9: `identity` in the definitions).

Which anonymous ids claim, and how many a lead keeps, decide the live identity state itself (each
anonymous id's winning link, each lead's kept ids), not only how it is viewed. So the first worker
of a group records them on its settings topic, and a worker whose definitions hold others refuses
to start, saying so: projecting the log again under other options takes a new group
(JOURNEY_APP_ID). Replay compares any two definitions, identity options included.
"""

from __future__ import annotations

import asyncio

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from projections import Definitions
from streams.errors import JourneyError
from streams.kafka import topics
from streams.kafka.compacted import latest_values
from streams.kafka.errors import BrokerError

KEY = b"identity"


class OtherIdentityOptions(JourneyError):
    """The worker's identity options are not those the group's state was built under."""


def options(defs: Definitions) -> bytes:
    max_ids, ignored = defs.identity
    return orjson.dumps({"max_anonymous_ids": max_ids, "ignored_ids": list(ignored)})


def check(bootstrap: str, app_id: str, defs: Definitions, embedded: bool) -> None:
    """Record this worker's identity options when the group has none yet; refuse others than recorded."""
    asyncio.run(_check(bootstrap, app_id, defs, embedded))


async def _check(bootstrap: str, app_id: str, defs: Definitions, embedded: bool) -> None:
    topic = topics.settings_topic(app_id)
    recorded = (await latest_values(bootstrap, topic, embedded)).get(KEY)
    mine = options(defs)
    if recorded is None:
        await _record(bootstrap, topic, mine)
    elif orjson.loads(recorded) != orjson.loads(mine):
        raise OtherIdentityOptions(
            f"this worker's identity options {mine.decode()} are not those group {app_id!r} built its state under "
            f"({recorded.decode()}); keep them, or project the log again under the new ones with another JOURNEY_APP_ID"
        )


async def _record(bootstrap: str, topic: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        await producer.start()
        await producer.send_and_wait(topic, value, key=KEY, partition=0)
    except KafkaError as exc:
        raise BrokerError(f"recording the identity options on {topic}: {type(exc).__name__}: {exc}") from None
    finally:
        await producer.stop()
