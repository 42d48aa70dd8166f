"""Where a topic is: a plain value, importable without loading a Kafka client (file replays start faster)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KafkaSource:
    """A topic to read whole: `kafka://BOOTSTRAP/TOPIC`."""

    bootstrap: str
    topic: str
