"""The embedded profile: Faust settings and patches for the development broker (Tansu) only.

`streams.kafka.tansu` says what Tansu gets wrong; this module makes Faust live
with it (the patches themselves are in streams/live/internals.py). Against Kafka
(`Profile(embedded=False)`) nothing here applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.live.internals import correct_faust_end_offsets, shorten_fetch_wait


@dataclass(frozen=True)
class Profile:
    """Broker-specific settings. `embedded` is for Tansu and nothing else (docs/embedded-broker.md)."""

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
