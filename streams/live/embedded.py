"""The embedded profile: Faust settings and patches for the development broker (Tansu) only.

`streams.kafka.tansu` says what Tansu gets wrong; this module makes Faust live
with it (the patches themselves are in streams/live/internals.py). Against Kafka
(`Profile(embedded=False)`) nothing here applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.live.internals import correct_faust_end_offsets, shorten_fetch_wait

# Tansu holds a JoinGroup until half the group's session timeout has passed, polling each second
# for other members (measured: 60 s -> 30 s, 10 s -> 5 s, 6 s -> 3 s; the rebalance timeout plays
# no part), so every start and rebalance costs half of it. 8 s: joins in 4 s, and a worker busy
# folding a large batch on a starved machine still heartbeats in time.
EMBEDDED_SESSION_TIMEOUT = 8.0


@dataclass(frozen=True)
class Profile:
    """Broker-specific settings. `embedded` is for Tansu and nothing else (docs/embedded-broker.md);
    `session_timeout` is JOURNEY_SESSION_TIMEOUT, for either broker."""

    embedded: bool
    session_timeout: float | None = None

    def faust_settings(self) -> dict[str, Any]:
        timeout = self.session_timeout or (EMBEDDED_SESSION_TIMEOUT if self.embedded else None)
        if timeout is None:
            return {}  # Faust's own: 60 s, heartbeats every 3 s
        group = {"broker_session_timeout": timeout, "broker_heartbeat_interval": timeout / 4}
        if self.embedded:
            group["broker_rebalance_timeout"] = timeout
        return group

    def patch_faust(self, bootstrap: str) -> None:
        if self.embedded:
            shorten_fetch_wait()
            correct_faust_end_offsets(bootstrap)  # producers batch: see streams/kafka/tansu.py
