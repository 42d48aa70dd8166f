"""What journey does about the embedded broker's (Tansu 0.6.0) quirks. Used in the embedded profile only.

**End offsets.** Tansu answers ListOffsets ("where does this partition end")
with the first offset of the partition's last record batch + 1, so after a
producer sends 20 records in one batch it says 1. Its Fetch answers carry the
right high watermark, and a fetch at any offset inside a batch returns the
records from there on. So the true end of a partition is the high watermark of
a fetch at the reported end - 1: that offset is the last batch's first record
and always exists. `corrected_end_offsets` does this with aiokafka inside the
worker (`streams.live.embedded` makes Faust's table recovery use it);
`corrected_end_offsets_blocking` with kafka-python for the commands (replay's
"read to the end", `journey dlq`).

**Topic settings.** Tansu reports the settings a topic was created with (such
as `cleanup.policy=compact`) as defaults, so asking for "modified" settings
finds none: `streams.kafka.topics` asks for all of them.

**Recognising it.** `journey broker` starts Tansu with the cluster id
`CLUSTER_ID`; Tansu's own default is `tansu_cluster`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

FETCH_WAIT_MS = 50
CLUSTER_ID = "journey-embedded"  # what `journey broker` starts Tansu with
TANSU_CLUSTER_IDS = (CLUSTER_ID, "tansu_cluster")
CORRECTION_TIMEOUT_S = 30.0


async def corrected_end_offsets(bootstrap: str, reported: Mapping[Any, int]) -> dict[Any, int]:
    """The true end offsets of partitions whose ListOffsets answers were `reported`.

    Keys may be aiokafka's or Faust's topic-partition tuples; they are returned as given.
    Never below the reported offset; an empty partition (reported 0) stays 0.
    """
    ends = dict(reported)
    pending = {TopicPartition(tp.topic, tp.partition): tp for tp, end in reported.items() if end > 0}
    if not pending:
        return ends
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=FETCH_WAIT_MS)
    await probe.start()
    try:
        probe.assign(list(pending))
        for tp, key in pending.items():
            probe.seek(tp, reported[key] - 1)
        async with asyncio.timeout(CORRECTION_TIMEOUT_S):
            while pending:
                await probe.getmany(*pending, timeout_ms=500, max_records=1)
                for tp in list(pending):
                    highwater = probe.highwater(tp)
                    if highwater is not None:
                        key = pending.pop(tp)
                        ends[key] = max(ends[key], highwater)
                        probe.pause(tp)
    finally:
        await probe.stop()
    return ends


def corrected_end_offsets_blocking(bootstrap: str, reported: Mapping[Any, int]) -> dict[Any, int]:
    """`corrected_end_offsets` with kafka-python, for the synchronous commands."""
    from kafka import KafkaConsumer
    from kafka import TopicPartition as SyncTopicPartition

    ends = dict(reported)
    pending = {SyncTopicPartition(tp.topic, tp.partition): tp for tp, end in reported.items() if end > 0}
    if not pending:
        return ends
    probe = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=FETCH_WAIT_MS)
    try:
        probe.assign(list(pending))
        for tp, key in pending.items():
            probe.seek(tp, reported[key] - 1)
        deadline = time.monotonic() + CORRECTION_TIMEOUT_S
        while pending and time.monotonic() < deadline:
            probe.poll(timeout_ms=500, max_records=1)
            for tp in list(pending):
                highwater = probe.highwater(tp)
                if highwater is not None:
                    key = pending.pop(tp)
                    ends[key] = max(ends[key], highwater)
                    probe.pause(tp)
        if pending:
            raise TimeoutError(f"no end offset for {sorted(str(tp) for tp in pending)} after {CORRECTION_TIMEOUT_S:.0f} s")
    finally:
        probe.close()
    return ends


def is_embedded(cluster_id: str | None) -> bool:
    """Whether a cluster id is Tansu's: the embedded development broker."""
    return cluster_id in TANSU_CLUSTER_IDS
