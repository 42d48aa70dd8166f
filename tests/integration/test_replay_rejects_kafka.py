"""`journey replay --input kafka://... --rejects FILE` (issue 28, item 5): each invalid record named by its
partition and offset, in their order, against the embedded broker."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from schemas import Rejection, decode
from streams.kafka import topics
from tests.integration.conftest import JOURNEY, end_offset_sums, produce, read_topic, wait_for

pytestmark = pytest.mark.timeout(120)


class TestKafkaRejects:
    def test_the_invalid_records_of_the_topic_by_partition_and_offset(self, broker, golden_log, tmp_path: Path) -> None:
        produce(broker, golden_log)
        wait_for(lambda: end_offset_sums(broker, topics.EVENTS, 8)[1] == len(golden_log), 30, "the broker to hold every record")
        out = tmp_path / "rejects.jsonl"
        result = subprocess.run(
            [JOURNEY, "replay", "--input", f"{broker.url}/{topics.EVENTS}", "--format", "json", "--rejects", str(out)], capture_output=True, timeout=60
        )
        assert result.returncode == 0, result.stderr.decode()
        expected = []
        for message in sorted(read_topic(broker.url.removeprefix("kafka://"), topics.EVENTS, 8), key=lambda m: (m.partition, m.offset)):
            found = decode(message.value)
            if isinstance(found, Rejection):
                record = message.value[:1024].decode("utf-8", errors="replace")
                expected.append({"partition": message.partition, "offset": message.offset, "kind": found.kind, "reason": found.reason, "record": record, "size": len(message.value)})
        rejects = [json.loads(line) for line in out.read_bytes().splitlines()]
        assert len(expected) == 36 and rejects == expected
        assert json.loads(result.stdout)["events"]["invalid"] == len(rejects)
