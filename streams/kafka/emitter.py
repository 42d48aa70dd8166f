"""Send journey events from a Python platform: each checked against the event contract,
keyed by its lead id, and confirmed by the broker before `emit` returns.

    from streams.kafka.emitter import Emitter

    with Emitter("kafka://kafka:9092") as emitter:
        emitter.emit({"event_id": "e-1", "lead_id": "lead-42", "type": "content_read",
                      "occurred_at": "2026-09-01T10:00:00Z", "channel": "email"})

An event the contract refuses raises `InvalidEvent` with the reason a worker
would give, and nothing is sent. kafka-python, synchronous: a platform's
request handler or batch job calls it as it would a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, NamedTuple

import orjson
from kafka.errors import KafkaError

from schemas import Rejection, decode, owner
from streams.errors import JourneyError
from streams.kafka import topics
from streams.kafka.errors import BrokerError
from streams.kafka.produce import producer
from streams.settings import bootstrap_servers


class InvalidEvent(JourneyError, ValueError):
    """The event breaks the contract (SPEC §2); `reason` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Delivery(NamedTuple):
    """Where the broker stored the event."""

    topic: str
    partition: int
    offset: int


class Emitter:
    def __init__(self, broker: str = "kafka://127.0.0.1:9092", topic: str = topics.EVENTS, timeout: float = 30.0) -> None:
        self._bootstrap = bootstrap_servers(broker)
        self._topic, self._timeout = topic, timeout
        self._producer = producer(self._bootstrap)

    def emit(self, event: Mapping[str, Any]) -> Delivery:
        """Check the event, send it keyed by lead id, and wait for the broker's acknowledgement."""
        try:
            record = orjson.dumps(event)
        except TypeError as exc:
            raise InvalidEvent(f"not JSON: {exc}") from None
        decoded = decode(record)
        if isinstance(decoded, Rejection):
            raise InvalidEvent(decoded.reason)
        try:
            stored = self._producer.send(self._topic, record, key=owner(decoded).encode()).get(timeout=self._timeout)
        except KafkaError as exc:
            raise BrokerError(f"{self._bootstrap}: the event was not acknowledged ({type(exc).__name__}: {exc}); emit it again") from None
        return Delivery(stored.topic, stored.partition, stored.offset)

    def close(self) -> None:
        self._producer.close(timeout=self._timeout)

    def __enter__(self) -> Emitter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.close()
