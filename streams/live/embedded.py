"""The embedded profile: Faust settings and patches for the development broker (Tansu) only.

`streams.kafka.tansu` says what Tansu gets wrong; this module makes Faust live
with it. Against Kafka (`Profile(embedded=False)`) nothing here applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from streams.kafka.tansu import FETCH_WAIT_MS, corrected_end_offsets


@dataclass(frozen=True)
class Profile:
    """Broker-specific settings. `embedded` is for Tansu and nothing else (README: embedded broker)."""

    embedded: bool

    def faust_settings(self) -> dict[str, Any]:
        if not self.embedded:
            return {}
        return {
            # Tansu completes a group join only after half the session timeout
            # (measured: 60 s -> 30 s, 10 s -> 5 s, 6 s -> 3 s), whatever the rebalance timeout.
            "broker_session_timeout": 8,
            "broker_heartbeat_interval": 2,
            "broker_rebalance_timeout": 8,
        }

    def patch_faust(self, bootstrap: str) -> None:
        if self.embedded:
            shorten_fetch_wait()
            correct_faust_end_offsets(bootstrap)  # producers batch: see streams/kafka/tansu.py


def correct_faust_end_offsets(bootstrap: str) -> None:
    """Make Faust's consumer answer `highwaters()` (table recovery's "read the changelog to
    here") with corrected end offsets. Without it a restarted worker stops recovering at the
    last batch's first record, or refuses a RocksDB table whose persisted offset lies beyond."""
    current = AIOKafkaConsumerThread._highwaters
    original = getattr(current, "journey_original", current)

    async def corrected_highwaters(self: Any, partitions: Any) -> Mapping[Any, int]:
        reported = await original(self, partitions)
        if self.consumer.in_transaction:
            return reported  # last stable offsets come from fetches: already right
        return await corrected_end_offsets(bootstrap, reported)

    corrected_highwaters.journey_original = original  # type: ignore[attr-defined]  # marks the patch: applied once
    AIOKafkaConsumerThread._highwaters = corrected_highwaters  # type: ignore[method-assign]  # Faust has no hook for it


def shorten_fetch_wait() -> None:
    """Tansu holds every fetch for the full fetch_max_wait_ms, however much data it has
    (measured: median 450 ms of latency at Faust's fixed 1500 ms, 3 ms at 100 ms).
    Faust offers no setting for it, so the embedded profile lowers it on the consumer
    Faust creates."""
    create = AIOKafkaConsumerThread._create_worker_consumer
    if getattr(create, "journey_embedded", False):
        return

    def create_with_short_wait(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = FETCH_WAIT_MS  # read when the consumer starts
        return consumer

    create_with_short_wait.journey_embedded = True  # type: ignore[attr-defined]  # marks the patch: applied once
    AIOKafkaConsumerThread._create_worker_consumer = create_with_short_wait  # type: ignore[method-assign]  # no setting for it
