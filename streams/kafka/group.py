"""A killed worker's group membership, ended by its successor on the same data dir.

A worker that stops cleanly leaves the consumer group, and the group hands
its partitions on at once. A worker killed with SIGKILL stays a member until
its session times out, and a worker started in its place waits for that
before the group settles: measured on the embedded broker, a restart after
SIGKILL took 7.7 s or 18.9 s, against 7.8 s after a clean stop, depending on
where the dead member's session stood. So a worker writes its member id into
its data dir whenever it joins, and a worker starting on that data dir first
asks the group coordinator to remove that member (LeaveGroup, what the dead
worker would have sent). A member that already left, or a group the broker
no longer knows, is answered with an error that is ignored: it only means
there was nothing to end.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiokafka.client import AIOKafkaClient, CoordinationType
from aiokafka.errors import KafkaError
from aiokafka.protocol.group import LeaveGroupRequest

log = logging.getLogger("journey.group")

MEMBER_FILE = "journey-group-member"


def remember_member(data_dir: Path, group: str, member_id: str) -> None:
    """Write the member id this worker joined the group with (best effort)."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / MEMBER_FILE).write_text(f"{group}\n{member_id}\n")
    except OSError as exc:
        log.warning("cannot write %s in %s: %s", MEMBER_FILE, data_dir, exc.strerror or exc)


def end_previous_member(bootstrap: str, data_dir: Path, timeout: float = 5.0) -> bool:
    """Remove the group member the last worker on this data dir joined as. True when the
    coordinator accepted (Kafka refuses a member that is gone; Tansu accepts it too)."""
    path = data_dir / MEMBER_FILE
    try:
        group, member_id = path.read_text().split()
    except (OSError, ValueError):
        return False
    try:
        ended = asyncio.run(asyncio.wait_for(_leave(bootstrap, group, member_id), timeout))
        log.info("asked the group %s to remove member %s, the last worker on %s: %s", group, member_id, data_dir, "done" if ended else "not a member")
        return ended
    except (TimeoutError, KafkaError, OSError) as exc:
        log.info("could not end the previous member %s of %s: %s", member_id, group, exc)
        return False


async def _leave(bootstrap: str, group: str, member_id: str) -> bool:
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    try:
        await client.bootstrap()
        coordinator = await client.coordinator_lookup(CoordinationType.GROUP, group)
        response = await client.send(coordinator, LeaveGroupRequest(group, member_id))
        return response.error_code == 0
    finally:
        await client.close()
