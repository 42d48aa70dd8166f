"""Every topic journey uses, created up front with its partition count.

Tansu creates an unknown topic with 4 partitions the moment anything touches
it, after which Faust fails with PartitionsMismatch; so nothing produces or
consumes before `ensure_topics` has created them all.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from streams.broker import CLUSTER_ID
from streams.errors import UserError

EVENTS = "journey.events"
DLQ = "journey.events.dlq"
LEAD_CHANGES = "journey.lead-changes"
WATERMARKS = "journey.watermarks"
LEADS_TABLE = "leads"
TANSU_CLUSTER_IDS = (CLUSTER_ID, "tansu_cluster")


@dataclass(frozen=True)
class TopicPlan:
    app_id: str
    partitions: int

    def topics(self) -> dict[str, int]:
        n = self.partitions
        return {
            EVENTS: n,
            DLQ: 1,
            LEAD_CHANGES: n,
            WATERMARKS: 1,
            changelog_topic(self.app_id, LEADS_TABLE): n,
            f"{self.app_id}-__assignor-__leader": 1,
        }


def changelog_topic(app_id: str, table: str) -> str:
    return f"{app_id}-{table}-changelog"


async def ensure_topics(bootstrap: str, topics: dict[str, int], replication_factor: int = 1) -> str:
    """Create the missing topics, check the partitions of the others; returns the cluster id."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        await _start(admin, bootstrap)
        cluster_id = (await admin.describe_cluster())["cluster_id"]
        existing = set(await admin.list_topics())
        missing = [NewTopic(name, n, replication_factor) for name, n in topics.items() if name not in existing]
        for topic in missing:
            try:
                await admin.create_topics([topic])
            except TopicAlreadyExistsError:
                pass  # another worker created it first
        present = [name for name in topics if name in existing]
        if present:
            _check_partitions(await admin.describe_topics(present), topics)
        return cluster_id
    except KafkaError as exc:
        raise UserError(f"broker {bootstrap}: {type(exc).__name__}: {exc}") from None
    finally:
        await admin.close()


async def _start(admin: AIOKafkaAdminClient, bootstrap: str, attempts: int = 10) -> None:
    for attempt in range(attempts):
        try:
            await admin.start()
            return
        except KafkaError:
            if attempt == attempts - 1:
                raise UserError(f"cannot reach the broker at {bootstrap}; is it running?") from None
            await asyncio.sleep(0.5)


def _check_partitions(described: list[dict], wanted: dict[str, int]) -> None:
    for topic in described:
        have, need = len(topic["partitions"]), wanted[topic["topic"]]
        if have != need:
            raise UserError(
                f"topic {topic['topic']} has {have} partitions but journey is set to {need}; "
                f"set JOURNEY_PARTITIONS={have} or recreate the topic"
            )


def is_embedded(cluster_id: str | None) -> bool:
    return cluster_id in TANSU_CLUSTER_IDS
