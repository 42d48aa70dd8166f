"""Every topic journey uses, created up front with its partition count and settings.

Tansu creates an unknown topic with 4 partitions the moment anything touches
it, after which Faust fails with PartitionsMismatch; so nothing produces or
consumes before `ensure_topics` has created them all.

Topic settings (only for topics journey creates; existing ones are checked):
the lead table's changelog and the watermarks are compacted, because a
recovery reads them whole and only each key's latest value matters; with
the broker's default (delete after a week) a recovering worker would lose
every lead not written for a week. So is journey.lead-changes.definitions
(per partition of journey.events, the definitions journey.lead-changes last
spoke under: SPEC §7's catch-up reads it), and journey.definitions (the cluster's `current` and
`shadow` definitions, SPEC §11). journey.events keeps its records
forever: it is the event log that replays and recoveries read; so does the identity
topic (`identity_topic`), which a worker that was down reads from where it stopped.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from streams.kafka.errors import BrokerError

EVENTS = "journey.events"
DLQ = "journey.events.dlq"
LEAD_CHANGES = "journey.lead-changes"
WATERMARKS = "journey.watermarks"
CHANGES_DEFINITIONS = "journey.lead-changes.definitions"
DEFINITIONS = "journey.definitions"  # SPEC §11: the cluster's `current` and `shadow` definitions
LEADS_TABLE = "leads"
COMPACTED = {"cleanup.policy": "compact"}
KEPT = {"retention.ms": "-1", "retention.bytes": "-1"}


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
            CHANGES_DEFINITIONS: 1,
            DEFINITIONS: 1,
            changelog_topic(self.app_id, LEADS_TABLE): n,
            identity_topic(self.app_id): n,
            settings_topic(self.app_id): 1,
            f"{self.app_id}-__assignor-__leader": 1,
        }

    def configs(self) -> dict[str, dict[str, str]]:
        """Topic settings journey creates topics with; those in `COMPACTED` it also checks."""
        return {
            EVENTS: KEPT, WATERMARKS: COMPACTED, CHANGES_DEFINITIONS: COMPACTED, DEFINITIONS: COMPACTED, changelog_topic(self.app_id, LEADS_TABLE): COMPACTED,
            identity_topic(self.app_id): KEPT, settings_topic(self.app_id): COMPACTED,
        }


def settings_topic(app_id: str) -> str:
    """What a group's state is built under and must not change under it (the identity options of SPEC §9),
    one compacted record per key (streams/live/identity_options.py)."""
    return f"{app_id}-settings"


def identity_topic(app_id: str) -> str:
    """The workers' identity messages (SPEC §9: streams/live/identity.py), one group's own, like its changelog:
    as many partitions as journey.events, partition i read by the owner of journey.events' partition i.
    Kept, not compacted: messages of two producers of one key (a worker that stalled and the one that took
    its partitions) may reach the topic in any order, and compaction would keep only the last."""
    return f"{app_id}-identity"


def changelog_topic(app_id: str, table: str) -> str:
    return f"{app_id}-{table}-changelog"


def ensure_topics(
    bootstrap: str, topics: dict[str, int], replication_factor: int = 1, configs: dict[str, dict[str, str]] | None = None
) -> str:
    """Create the missing topics (with `configs`), check the others; returns the cluster id."""
    configs = configs or {}
    admin = _admin(bootstrap)
    try:
        cluster_id = admin.describe_cluster()["cluster_id"]
        existing = set(admin.list_topics())
        missing = [NewTopic(name, n, replication_factor, topic_configs=configs.get(name, {})) for name, n in topics.items() if name not in existing]
        for topic in missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker created it first
                admin.create_topics([topic])
        present = [name for name in topics if name in existing]
        if present:
            _check_partitions(admin.describe_topics(present), topics)
            _check_compaction(admin, [name for name in present if configs.get(name) == COMPACTED])
        return cluster_id
    except KafkaError as exc:
        raise BrokerError(f"broker {bootstrap}: {type(exc).__name__}: {exc}") from None
    finally:
        admin.close()


BOOTSTRAP_TIMEOUT_MS = 5_000  # kafka-python keeps trying to connect for this long: a broker still starting


def _admin(bootstrap: str) -> KafkaAdminClient:
    try:
        return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000, bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS)
    except KafkaError:
        raise BrokerError(f"cannot reach the broker at {bootstrap}; is it running?") from None


def _check_partitions(described: list[dict], wanted: dict[str, int]) -> None:
    for topic in described:
        have, need = len(topic["partitions"]), wanted[topic["name"]]
        if have != need:
            raise BrokerError(
                f"topic {topic['name']} has {have} partitions but journey is set to {need}; "
                f"set JOURNEY_PARTITIONS={have} or recreate the topic"
            )


def topic_configs(bootstrap: str, names: list[str]) -> dict[str, dict[str, str]]:
    """The settings the broker reports for each of these topics."""
    admin = _admin(bootstrap)
    try:
        return _configs(admin, names)
    finally:
        admin.close()


def _configs(admin: KafkaAdminClient, names: list[str]) -> dict[str, dict[str, str]]:
    # Every setting, not only "modified" ones: the embedded broker reports settings a topic was
    # created with as defaults, so the modified filter would hide them.
    found = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in names], config_filter="all")
    return {name: {key: entry["value"] for key, entry in settings.items()} for name, settings in found.get("topic", {}).items()}


def _check_compaction(admin: KafkaAdminClient, names: list[str]) -> None:
    """Warn (once per start) about a table topic someone created without compaction."""
    if not names:
        return
    try:
        found = _configs(admin, names)
    except KafkaError:
        return  # a broker that cannot say; nothing to warn about
    for name, settings in found.items():
        policy = settings.get("cleanup.policy")
        if policy is not None and "compact" not in policy:
            print(
                f"journey: warning: topic {name} has cleanup.policy={policy}; a recovering worker loses what it "
                f"deleted. Set cleanup.policy=compact on it (kafka-configs --alter --add-config cleanup.policy=compact)",
                file=sys.stderr,
                flush=True,
            )
