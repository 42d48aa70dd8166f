"""SPEC §7's catch-up, in the core: which leads get a change when a partition's definitions change."""

from __future__ import annotations

from pathlib import Path

import orjson

from projections import Definitions, Projector, default_definitions, load_definitions
from projections.changes import NewDefinitions
from projections.live import BatchResult, LiveProjection, Record, catch_up
from projections.routing import kafka_partition
from streams.live.changes import published_under, read_published_under

GOLDEN = Path(__file__).parent.parent / "golden"
PARTITIONS = 4


class DictTable(dict):
    def put(self, lead_id: str, value: bytes) -> None:
        self[lead_id] = value


def projected(records: list[bytes], defs: Definitions) -> tuple[LiveProjection, DictTable]:
    live, table = LiveProjection(defs), DictTable()
    by_partition: dict[int, list[Record]] = {}
    for record in records:
        try:
            lead = orjson.loads(record)["lead_id"]
        except (orjson.JSONDecodeError, TypeError, KeyError):
            continue
        if isinstance(lead, str):
            part = by_partition.setdefault(kafka_partition(lead.encode(), PARTITIONS), [])
            part.append(Record(len(part), record))
    for partition, part in by_partition.items():
        live.process(partition, part, table, BatchResult())
    return live, table


def expected(records: list[bytes], defs: Definitions) -> dict[str, tuple[str | None, str]]:
    projector = Projector()
    projector.feed_all(records)
    return {lead["lead_id"]: (lead["stage"], lead["qualification"]) for lead in projector.lead_records(defs)}


class TestCatchUp:
    def test_exactly_the_leads_whose_stage_or_level_differs_get_a_change_to_their_new_state(self) -> None:
        records = (GOLDEN / "journey-small.jsonl").read_bytes().splitlines()
        old, new = default_definitions(), load_definitions(GOLDEN / "alt-definitions.yaml")
        before, after = expected(records, old), expected(records, new)
        live, table = projected(records, new)
        mark = max(live.partitions[p].watermark for p in live.partitions)
        changes = catch_up(live.defs, table.items(), dict.fromkeys(range(PARTITIONS), old), mark)
        flat = {change.lead_id: change for found in changes.values() for change in found}
        moved = {lead for lead in after if before[lead] != after[lead]}
        assert moved and set(flat) == moved
        for lead, change in flat.items():
            assert (change.old_stage, change.old_qualification) == before[lead]
            assert (change.new_stage, change.new_qualification) == after[lead]
            assert change.cause == NewDefinitions(new.digest) and change.occurred_at == mark
        assert all(kafka_partition(change.lead_id.encode(), PARTITIONS) == p for p, found in changes.items() for change in found)

    def test_only_the_partitions_asked_for_and_unknown_definitions_get_every_lead(self) -> None:
        records = (GOLDEN / "journey-small.jsonl").read_bytes().splitlines()
        new = load_definitions(GOLDEN / "alt-definitions.yaml")
        live, table = projected(records, new)
        changes = catch_up(live.defs, table.items(), {2: None}, None)
        leads_of_2 = {lead for lead in expected(records, new) if kafka_partition(lead.encode(), PARTITIONS) == 2}
        assert set(changes) == {2} and {c.lead_id for c in changes[2]} == leads_of_2
        assert all(c.old_stage is None and c.old_qualification is None for c in changes[2])

    def test_the_same_definitions_give_no_change(self) -> None:
        records = (GOLDEN / "journey-small.jsonl").read_bytes().splitlines()
        live, table = projected(records, default_definitions())
        assert catch_up(live.defs, table.items(), dict.fromkeys(range(PARTITIONS), default_definitions()), None) == {p: [] for p in range(PARTITIONS)}


class TestSpokenUnder:
    def test_the_record_reads_back_to_the_same_definitions(self) -> None:
        for defs in (default_definitions(), load_definitions(GOLDEN / "alt-definitions.yaml")):
            key, value = published_under(3, defs)
            assert key == b"3" and read_published_under(value) == defs
            assert orjson.loads(value)["digest"] == defs.digest

    def test_an_unreadable_or_inconsistent_record_is_unknown_not_an_error(self) -> None:
        _, value = published_under(0, default_definitions())
        tampered = value.replace(b'"mql_min_content_reads":2', b'"mql_min_content_reads":3')
        for bad in (b"", b"not json", b"[]", b'{"digest":"x"}', b'{"digest":"x","definitions":{"pipeline":1}}', tampered):
            assert read_published_under(bad) is None, bad
