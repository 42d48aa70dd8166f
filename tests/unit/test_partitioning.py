"""Parallel replay routes every record of a lead to the same partition, whatever its spelling:
the partition Kafka's default partitioner gives a record keyed by that lead id."""

from __future__ import annotations

from typing import Any

import orjson
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.replay.parallel import partition_of


def truth(obj: Any, partitions: int) -> int:
    lead = obj.get("lead_id") if isinstance(obj, dict) else None
    if not isinstance(lead, str):
        return 0
    return DefaultPartitioner()(lead.encode("utf-8", "surrogatepass"), list(range(partitions)), list(range(partitions)))


ids = st.text(min_size=0, max_size=20) | st.sampled_from(['a"b', "a\\b", "é", "lead_id", '"lead_id"', "\u2028"])
values = st.none() | st.integers(-(2**63), 2**63 - 1) | ids | st.dictionaries(st.sampled_from(["lead_id", "x"]), ids, max_size=2)
objects = st.fixed_dictionaries({"lead_id": values}, optional={"source": values, "properties": values, "lead_id2": ids})


class TestPartitionOf:
    @settings(max_examples=500, deadline=None)
    @given(objects, st.integers(1, 7))
    def test_the_partition_is_that_of_the_parsed_lead_id(self, obj: dict, partitions: int) -> None:
        assert partition_of(orjson.dumps(obj), partitions) == truth(obj, partitions)

    @settings(max_examples=200, deadline=None)
    @given(ids, st.integers(1, 7))
    def test_spacing_and_escapes_do_not_move_a_lead(self, lead: str, partitions: int) -> None:
        compact = orjson.dumps({"lead_id": lead})
        spaced = b'{ "lead_id" :  ' + orjson.dumps(lead) + b" }"
        escaped = b'{"lead_id": "' + "".join(f"\\u{ord(c):04x}" for c in lead).encode() + b'"}' if all(ord(c) < 0x10000 for c in lead) else compact
        assert partition_of(compact, partitions) == partition_of(spaced, partitions) == partition_of(escaped, partitions)

    def test_lines_without_a_readable_lead_go_to_partition_zero(self) -> None:
        for line in (b"not json", b"[1]", b'{"lead_id": 4}', b'{"source": "lead_id"}', b"\x00"):
            assert partition_of(line, 5) == 0
