"""SPEC §11: the cluster's definitions on the compacted topic journey.definitions.

Two keys, each holding a canonical document (the JSON the digest is taken over, SPEC §7):
`current`, the definitions every worker runs when the record is there (else its own file), and
`shadow`, a candidate every worker counts beside them. A tombstone (a record without a value)
removes a key. Readers keep each key's latest value (streams/kafka/compacted.py); writers wait
for the broker to acknowledge, so an admin endpoint answers only once the record is held.

A record that is no definitions document (written by hand, or by a journey that reads them
otherwise) is reported and left out, never applied: the worker goes on as if the key were absent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from projections import Definitions
from projections.definitions import DefinitionsError, parse_definitions
from streams.kafka import topics
from streams.kafka.compacted import latest_values
from streams.kafka.errors import BrokerError

log = logging.getLogger("journey.worker")

CURRENT = b"current"
SHADOW = b"shadow"


@dataclass(frozen=True)
class Recorded:
    """What journey.definitions holds: each key's definitions, None when absent (or unreadable)."""

    current: Definitions | None = None
    shadow: Definitions | None = None

    @classmethod
    def of(cls, values: dict[bytes, bytes]) -> Recorded:
        return cls(_read(values, CURRENT), _read(values, SHADOW))


def digest_of(defs: Definitions | None) -> str | None:
    """The digest that names definitions (SPEC §7), None for none (no shadow, no `current` record)."""
    return None if defs is None else defs.digest


def _read(values: dict[bytes, bytes], key: bytes) -> Definitions | None:
    value = values.get(key)
    if value is None:
        return None
    try:
        return parse_definitions(value.decode("utf-8"), f"{topics.DEFINITIONS} {key.decode()}")
    except (UnicodeDecodeError, DefinitionsError) as exc:
        log.error("%s: the %s record is no definitions document (%s); going on as if there were none", topics.DEFINITIONS, key.decode(), exc)
        return None


async def read(bootstrap: str, embedded: bool) -> Recorded:
    """journey.definitions as of its end now."""
    return Recorded.of(await latest_values(bootstrap, topics.DEFINITIONS, embedded))


async def record(bootstrap: str, *records: tuple[bytes, Definitions | None]) -> None:
    """Record each (key, definitions) in order (None: a tombstone, the key removed), acknowledged by
    the broker. Sent together, so that followers most often read them in one fetch (a promotion's
    `current` and the shadow's tombstone: one switch, not two)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        await producer.start()
        sent = [await producer.send(topics.DEFINITIONS, None if defs is None else defs.canonical.encode(), key=key, partition=0) for key, defs in records]
        for done in sent:
            await done
    except KafkaError as exc:
        keys = ", ".join(key.decode() for key, _ in records)
        raise BrokerError(f"recording {keys} on {topics.DEFINITIONS}: {type(exc).__name__}: {exc}") from None
    finally:
        await producer.stop()


def effective(file_defs: Definitions, recorded: Recorded) -> Definitions:
    """SPEC §11: a worker's effective definitions, the `current` record when there is one, else its own file's."""
    return recorded.current if recorded.current is not None else file_defs


def in_effect(file_defs: Definitions, recorded: Recorded) -> tuple[Definitions, Definitions | None]:
    """The effective definitions and the shadow counted beside them. A shadow must keep their
    identity options (it counts the same persons, SPEC §9): one that does not is reported and left out."""
    defs, shadow = effective(file_defs, recorded), recorded.shadow
    if shadow is not None and shadow.identity != defs.identity:
        log.error("%s: the shadow %s has other identity options than the definitions %s; it is not counted", topics.DEFINITIONS, shadow.digest, defs.digest)
        return defs, None
    return defs, shadow
